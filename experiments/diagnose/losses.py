def diagnose_loss(*a, **k):
    return []
