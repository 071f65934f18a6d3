"""Kernels that fit a + b exp(-tau/T1) [+ c exp(-tau/T2)] to many curves (variable projection).

For fixed time constants the model is linear in (a, b, c), so each candidate
(T1[, T2]) is scored by a small weighted least-squares solve with ``b, c >= 0``
(exact non-negative least squares by enumerating the active sets of the two
amplitudes; the level ``a`` is free). The time constants are found by a grid
search over log T followed by a local refinement (golden section for one
component, a 3 x 3 stencil search with Newton steps for two), always within
``[t_min, t_max]`` and with ``T1 <= T2``.

:func:`fit_range` fits curves ``c0:c1``; the caller runs fixed ranges on
threads (the kernels release the GIL). Curves are independent and each row of
the output has one writer, so results are the same bits for any number of threads.

Output columns (``out[curve, :]``)::

    0 a1  1 b1  2 T1  3 rss1                      one component
    4 a2  5 b2  6 c2  7 T21  8 T22  9 rss2        two components (T21 <= T22)
"""

import math

import numba
import numpy as np

from ._config import JIT
from .lag import finite

N_OUT = 10
#: column counts of the two models, as int64 globals: a literal 2 or 3 at a call site makes Numba
#: compile the callee once per literal value (two compilations of the NNLS chain, seconds each)
_TWO = np.int64(2)
_THREE = np.int64(3)


@numba.njit(**JIT)
def _basis(tau, even, T, out):
    """out[i] = exp(-tau[i] / T); by a power recurrence when tau is evenly spaced."""
    n = tau.shape[0]
    if even and n > 1:
        q = math.exp(-(tau[1] - tau[0]) / T)
        v = math.exp(-tau[0] / T)
        for i in range(n):
            out[i] = v
            v *= q
    else:
        for i in range(n):
            out[i] = math.exp(-tau[i] / T)


@numba.njit(**JIT)
def _solve(G, r, k, sol, A):
    """Solve the k x k system G sol = r (k <= 3) by Gaussian elimination (A: 3 x 4 scratch); False if singular."""
    for i in range(k):
        for j in range(k):
            A[i, j] = G[i, j]
        A[i, k] = r[i]
    scale = 0.0
    for i in range(k):
        scale = max(scale, abs(A[i, i]))
    if scale <= 0.0:
        return False
    for c in range(k):
        piv = c
        for i in range(c + 1, k):
            if abs(A[i, c]) > abs(A[piv, c]):
                piv = i
        if abs(A[piv, c]) <= 1e-13 * scale:
            return False
        if piv != c:
            for j in range(k + 1):
                A[c, j], A[piv, j] = A[piv, j], A[c, j]
        for i in range(c + 1, k):
            f = A[i, c] / A[c, c]
            for j in range(c, k + 1):
                A[i, j] -= f * A[c, j]
    for i in range(k - 1, -1, -1):
        s = A[i, k]
        for j in range(i + 1, k):
            s -= A[i, j] * sol[j]
        sol[i] = s / A[i, i]
    return True


@numba.njit(**JIT)
def _scratch():
    """Scratch arrays of the small solves: sol, Gs, rs, idx, A, G, r."""
    return (np.empty(3), np.empty((3, 3)), np.empty(3), np.empty(3, dtype=np.int64), np.empty((3, 4)),
            np.zeros((3, 3)), np.zeros(3))


@numba.njit(**JIT)
def _nnls_from_normal(G, r, yy, ncol, coef, sol, Gs, rs, idx, A):
    """Min of ||y - X coef||_w^2 with coef[1:] >= 0 from normal equations; returns the RSS.

    ``G`` = X'WX, ``r`` = X'Wy, ``yy`` = y'Wy for columns [1, e1(, e2)]; every
    subset of the amplitudes is tried and the best feasible one kept. The other
    arguments are scratch arrays (see :func:`_scratch`).
    """
    best = np.inf
    for mask in range(1 << (ncol - 1)):
        k = 1
        idx[0] = 0
        for j in range(ncol - 1):
            if mask & (1 << j):
                idx[k] = j + 1
                k += 1
        for i in range(k):
            rs[i] = r[idx[i]]
            for j in range(k):
                Gs[i, j] = G[idx[i], idx[j]]
        if not _solve(Gs, rs, k, sol, A):
            continue
        ok = True
        for i in range(1, k):
            if sol[i] < 0.0:
                ok = False
        if not ok:
            continue
        rss = yy
        for i in range(k):
            rss -= sol[i] * rs[i]  # at the LS solution, RSS = y'y - sol'X'y
        if rss < best:
            best = rss
            for j in range(ncol):
                coef[j] = 0.0
            for i in range(k):
                coef[idx[i]] = sol[i]
    return best


@numba.njit(**JIT)
def _fit_fixed(y, w, e1, e2, ncol, coef, ws):
    """Amplitudes for fixed basis columns, and the RSS computed from the residuals."""
    G = ws[5]
    r = ws[6]
    for i in range(3):
        r[i] = 0.0
        for j in range(3):
            G[i, j] = 0.0
    yy = 0.0
    for i in range(y.shape[0]):
        wi = w[i]
        if wi <= 0.0:
            continue
        a = e1[i]
        b = e2[i] if ncol == 3 else 0.0
        G[0, 0] += wi
        G[0, 1] += wi * a
        G[1, 1] += wi * a * a
        r[0] += wi * y[i]
        r[1] += wi * a * y[i]
        yy += wi * y[i] * y[i]
        if ncol == 3:
            G[0, 2] += wi * b
            G[1, 2] += wi * a * b
            G[2, 2] += wi * b * b
            r[2] += wi * b * y[i]
    G[1, 0] = G[0, 1]
    G[2, 0] = G[0, 2]
    G[2, 1] = G[1, 2]
    best = _nnls_from_normal(G, r, yy, ncol, coef, ws[0], ws[1], ws[2], ws[3], ws[4])
    if not finite(best):
        return np.inf
    rss = 0.0
    for i in range(y.shape[0]):
        if w[i] > 0.0:
            f = coef[0] + coef[1] * e1[i]
            if ncol == 3:
                f += coef[2] * e2[i]
            d = y[i] - f
            rss += w[i] * d * d
    return rss


@numba.njit(**JIT)
def _eval1(y, w, tau, even, logT, e1, coef, ws):
    _basis(tau, even, math.exp(logT), e1)
    return _fit_fixed(y, w, e1, e1, _TWO, coef, ws)


@numba.njit(**JIT)
def _eval2(y, w, tau, even, l1, l2, e1, e2, coef, ws):
    if l1 > l2:
        l1, l2 = l2, l1
    _basis(tau, even, math.exp(l1), e1)
    _basis(tau, even, math.exp(l2), e2)
    return _fit_fixed(y, w, e1, e2, _THREE, coef, ws)


@numba.njit(**JIT)
def fit_curve(y, w, tau, even, grid, E, lo, hi, want1, want2, out):
    """Fit one curve; ``grid`` = log T values, ``E[k]`` = basis of grid[k]; writes ``out`` (N_OUT,)."""
    n = tau.shape[0]
    K = grid.shape[0]
    for j in range(N_OUT):
        out[j] = np.nan
    e1 = np.empty(n)
    e2 = np.empty(n)
    coef = np.zeros(3)
    ws = _scratch()
    sol, Gs, rs, idx, A = ws[0], ws[1], ws[2], ws[3], ws[4]
    step = (grid[K - 1] - grid[0]) / max(K - 1, 1)
    # moments shared by the grid search
    S0 = 0.0
    Sy = 0.0
    Syy = 0.0
    for i in range(n):
        S0 += w[i]
        Sy += w[i] * y[i]
        Syy += w[i] * y[i] * y[i]
    if S0 <= 0.0:
        return
    SE = np.zeros(K)
    SEy = np.zeros(K)
    SEE = np.zeros((K, K))
    for k in range(K):
        for i in range(n):
            SE[k] += w[i] * E[k, i]
            SEy[k] += w[i] * E[k, i] * y[i]
        for j in range(k, K):
            s = 0.0
            for i in range(n):
                s += w[i] * E[k, i] * E[j, i]
            SEE[k, j] = s
            SEE[j, k] = s
    G = np.zeros((3, 3))
    r = np.zeros(3)
    if want1:
        best = np.inf
        kb = 0
        for k in range(K):
            G[0, 0] = S0
            G[0, 1] = SE[k]
            G[1, 0] = SE[k]
            G[1, 1] = SEE[k, k]
            r[0] = Sy
            r[1] = SEy[k]
            v = _nnls_from_normal(G, r, Syy, _TWO, coef, sol, Gs, rs, idx, A)
            if v < best:
                best = v
                kb = k
        # golden section on log T around the best grid point
        a = max(grid[kb] - step, lo)
        b = min(grid[kb] + step, hi)
        g = 0.5 * (math.sqrt(5.0) - 1.0)
        c = b - g * (b - a)
        d = a + g * (b - a)
        fc = _eval1(y, w, tau, even, c, e1, coef, ws)
        fd = _eval1(y, w, tau, even, d, e1, coef, ws)
        for _ in range(80):
            if fc <= fd:
                b = d
                d = c
                fd = fc
                c = b - g * (b - a)
                fc = _eval1(y, w, tau, even, c, e1, coef, ws)
            else:
                a = c
                c = d
                fc = fd
                d = a + g * (b - a)
                fd = _eval1(y, w, tau, even, d, e1, coef, ws)
            if b - a < 1e-8:
                break
        lt = c if fc <= fd else d
        f_grid = _eval1(y, w, tau, even, grid[kb], e1, coef, ws)
        if f_grid < min(fc, fd):
            lt = grid[kb]
        rss = _eval1(y, w, tau, even, lt, e1, coef, ws)
        out[0] = coef[0]
        out[1] = coef[1]
        out[2] = math.exp(lt)
        out[3] = rss
    if want2 and K >= 2:
        best = np.inf
        k1b = 0
        k2b = 1
        for k1 in range(K - 1):
            for k2 in range(k1 + 1, K):
                G[0, 0] = S0
                G[0, 1] = SE[k1]
                G[0, 2] = SE[k2]
                G[1, 1] = SEE[k1, k1]
                G[1, 2] = SEE[k1, k2]
                G[2, 2] = SEE[k2, k2]
                G[1, 0] = G[0, 1]
                G[2, 0] = G[0, 2]
                G[2, 1] = G[1, 2]
                r[0] = Sy
                r[1] = SEy[k1]
                r[2] = SEy[k2]
                v = _nnls_from_normal(G, r, Syy, _THREE, coef, sol, Gs, rs, idx, A)
                if v < best:
                    best = v
                    k1b = k1
                    k2b = k2
        # 3 x 3 stencil search in (log T1, log T2): a Newton step from the stencil's
        # quadratic model when it improves, else the best stencil point, else a halved step
        l1 = grid[k1b]
        l2 = grid[k2b]
        fbest = _eval2(y, w, tau, even, l1, l2, e1, e2, coef, ws)
        h = step
        evals = 0
        f = np.empty((3, 3))
        while h > 1e-7 and evals < 300:
            f[1, 1] = fbest
            b1 = l1
            b2 = l2
            fb = fbest
            for di in range(3):
                for dj in range(3):
                    if di == 1 and dj == 1:
                        continue
                    c1 = min(max(l1 + (di - 1) * h, lo), hi)
                    c2 = min(max(l2 + (dj - 1) * h, lo), hi)
                    v = _eval2(y, w, tau, even, c1, c2, e1, e2, coef, ws)
                    evals += 1
                    f[di, dj] = v
                    if v < fb:
                        fb = v
                        b1 = c1
                        b2 = c2
            g1 = (f[2, 1] - f[0, 1]) / (2.0 * h)
            g2 = (f[1, 2] - f[1, 0]) / (2.0 * h)
            h11 = (f[2, 1] - 2.0 * f[1, 1] + f[0, 1]) / (h * h)
            h22 = (f[1, 2] - 2.0 * f[1, 1] + f[1, 0]) / (h * h)
            h12 = (f[2, 2] - f[2, 0] - f[0, 2] + f[0, 0]) / (4.0 * h * h)
            det = h11 * h22 - h12 * h12
            newton = False
            if h11 > 0.0 and det > 0.0 and finite(det):
                d1 = -(h22 * g1 - h12 * g2) / det
                d2 = -(h11 * g2 - h12 * g1) / det
                if finite(d1) and finite(d2) and abs(d1) <= 4.0 * h and abs(d2) <= 4.0 * h:
                    c1 = min(max(l1 + d1, lo), hi)
                    c2 = min(max(l2 + d2, lo), hi)
                    v = _eval2(y, w, tau, even, c1, c2, e1, e2, coef, ws)
                    evals += 1
                    if v < fb:
                        fb = v
                        b1 = c1
                        b2 = c2
                        newton = True
            if fb < fbest:
                step_len = max(abs(b1 - l1), abs(b2 - l2))
                l1 = b1
                l2 = b2
                fbest = fb
                if newton:
                    h = max(min(h, step_len), 1e-8)
            else:
                h *= 0.25
        if l1 > l2:
            l1, l2 = l2, l1
        rss = _eval2(y, w, tau, even, l1, l2, e1, e2, coef, ws)
        out[4] = coef[0]
        out[5] = coef[1]
        out[6] = coef[2]
        out[7] = math.exp(l1)
        out[8] = math.exp(l2)
        out[9] = rss


@numba.njit(**JIT)
def fit_range(Y, W, tau, even, grid, E, lo, hi, want1, want2, out, c0, c1):
    """Fit curves ``c0:c1`` of ``Y`` (curves x tau) into ``out`` (curves x N_OUT)."""
    for c in range(c0, c1):
        fit_curve(Y[c], W[c], tau, even, grid, E, lo, hi, want1, want2, out[c])
