"""Slow, obviously correct twins of the kernels (one module per topic).

Each function here is written for clarity with plain Python/NumPy loops and is
the reference every fast kernel is tested against.
"""
