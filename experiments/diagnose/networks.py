def diagnose_network(*a, **k):
    return []
