"""Student-style NumPy layers, losses and optimizers written for the tests of ``xfw check``.

They follow course conventions on purpose: one image at a time, channels last, kernels
flattened to ``(kh*kw, filters)``, activations with separate derivative functions,
in-place updates in ``backward(grad, learning_rate)``, per-sample loops. Each module has
correct classes and broken variants (a flag) that must fail at a named quantity.
"""
