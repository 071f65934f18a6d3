"""Numba kernels on plain NumPy arrays.

Only ``@njit`` code lives here. Inputs are validated and normalised (dtype,
contiguity, ndim) by the public NumPy-level functions that call these kernels,
never inside a kernel. Parallel kernels take the thread count as an argument
(``numba.get_num_threads()`` inside a kernel would defeat ``cache=True``).
"""
