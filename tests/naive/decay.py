"""Slow, obviously correct twin of emostats/_kernels/decay.py (the decay fits).

The kernel fits ``a + b exp(-tau/T1) [+ c exp(-tau/T2)]`` with ``b, c >= 0`` by
variable projection: for fixed time constants an exact non-negative least-squares
solve, over ``log T`` a grid search and a local refinement. The twin does the
same things the plain way:

- NNLS for fixed T: every active set of the amplitudes solved with
  ``numpy.linalg.lstsq`` on the sqrt(w)-weighted design, the best feasible kept
  (and, independently, ``scipy.optimize.nnls`` with the free level split into
  two non-negative columns);
- the time constants: the same grid, then ``scipy.optimize.minimize_scalar``
  (bounded, one component) or ``scipy.optimize.minimize`` (L-BFGS-B within the
  bounds, two components) from the best grid point.

Output: the kernel's table (``N_OUT`` columns, see the kernel's docstring).
"""

import itertools
import math

import numpy as np
import scipy.optimize

#: twin against kernel: both stop a local search on a flat minimum (the kernel at a step of 1e-7 in
#: log T, scipy at its own tolerances), so the fitted T agree to about 1e-5 relative, the RSS much closer
RTOL = 2e-5
ATOL = 1e-7
N_OUT = 10


def design(tau, times):
    """Columns [1, exp(-tau/T) for T in times]."""
    tau = np.asarray(tau, dtype=np.float64)
    return np.column_stack([np.ones(tau.size)] + [np.exp(-tau / T) for T in times])


def nnls_fixed(y, w, tau, times):
    """(coef, rss) of min sum w (y - X coef)^2 with coef[1:] >= 0, X = design(tau, times); by active sets."""
    X = design(tau, times)
    keep = w > 0
    sw = np.sqrt(w[keep])
    A, b = X[keep] * sw[:, None], y[keep] * sw
    best = (None, np.inf)
    k = X.shape[1] - 1
    for active in itertools.product((False, True), repeat=k):
        cols = [0] + [j + 1 for j in range(k) if active[j]]
        sol = np.linalg.lstsq(A[:, cols], b, rcond=None)[0]
        if np.any(sol[1:] < 0):
            continue
        coef = np.zeros(k + 1)
        coef[cols] = sol
        rss = float(np.sum((b - A @ coef) ** 2))
        if rss < best[1]:
            best = (coef, rss)
    return best


def nnls_scipy(y, w, tau, times):
    """The same problem with scipy.optimize.nnls: the free level as two non-negative columns (+1, -1)."""
    X = design(tau, times)
    keep = w > 0
    sw = np.sqrt(w[keep])
    A = np.column_stack([X[keep, :1], -X[keep, :1], X[keep, 1:]]) * sw[:, None]
    sol, _ = scipy.optimize.nnls(A, y[keep] * sw)
    coef = np.concatenate(([sol[0] - sol[1]], sol[2:]))
    rss = float(np.sum(w[keep] * (y[keep] - X[keep] @ coef) ** 2))
    return coef, rss


def fit_curve(y, w, tau, grid, lo, hi):
    """The kernel's output row for one curve (NaN where there is nothing to fit)."""
    out = np.full(N_OUT, np.nan)
    w = np.where(np.isfinite(y) & np.isfinite(w) & (w > 0), w, 0.0)
    y = np.where(w > 0, y, 0.0)
    if w.sum() <= 0:
        return out

    def f1(lt):
        return nnls_fixed(y, w, tau, [math.exp(lt)])[1]

    g = [f1(lt) for lt in grid]
    k = int(np.argmin(g))
    step = (grid[-1] - grid[0]) / max(len(grid) - 1, 1)
    res = scipy.optimize.minimize_scalar(f1, bounds=(max(grid[k] - step, lo), min(grid[k] + step, hi)),
                                         method="bounded", options={"xatol": 1e-10})
    lt = res.x if res.fun < g[k] else grid[k]
    coef, rss = nnls_fixed(y, w, tau, [math.exp(lt)])
    out[:4] = coef[0], coef[1], math.exp(lt), rss

    def f2(p):
        l1, l2 = sorted(p)
        return nnls_fixed(y, w, tau, [math.exp(l1), math.exp(l2)])[1]

    pairs = [(f2((grid[i], grid[j])), i, j) for i in range(len(grid)) for j in range(i + 1, len(grid))]
    _, i, j = min(pairs)
    res = scipy.optimize.minimize(f2, [grid[i], grid[j]], method="L-BFGS-B", bounds=[(lo, hi), (lo, hi)],
                                  options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 500})
    l1, l2 = sorted(res.x if res.fun < f2((grid[i], grid[j])) else (grid[i], grid[j]))
    coef, rss = nnls_fixed(y, w, tau, [math.exp(l1), math.exp(l2)])
    out[4:] = coef[0], coef[1], coef[2], math.exp(l1), math.exp(l2), rss
    return out


def fit_curves(Y, W, tau, grid, lo, hi):
    """:func:`fit_curve` for every row."""
    return np.array([fit_curve(Y[i], W[i], tau, grid, lo, hi) for i in range(Y.shape[0])]).reshape(-1, N_OUT)


def run_fast_kernel(kernel_module, Y, W, tau, grid, lo, hi):
    """The kernel's ``fit_range`` on the same inputs (both models), as emostats.decay calls it."""
    Y = np.ascontiguousarray(Y, dtype=np.float64)
    W = np.ascontiguousarray(np.where(np.isfinite(Y) & np.isfinite(W) & (W > 0), W, 0.0))
    Y = np.ascontiguousarray(np.where(W > 0, Y, 0.0))
    E = np.ascontiguousarray(np.exp(-tau[None, :] / np.exp(grid)[:, None]))
    d = np.diff(tau)
    even = bool(tau.size > 1 and np.allclose(d, d[0], rtol=1e-12, atol=0))
    out = np.full((Y.shape[0], kernel_module.N_OUT), np.nan)
    kernel_module.fit_range(Y, W, tau, even, grid, E, lo, hi, True, True, out, 0, Y.shape[0])
    return out


def curve_set(rng, n=4, tau=None, noise=0.01):
    """Curves a + b 2^(-tau/h1) + c 2^(-tau/h2) with well-separated half-lives and a little noise, equal weights."""
    tau = np.arange(1.0, 121.0) if tau is None else tau
    rows = []
    for _ in range(n):
        h1 = rng.uniform(1.5, 6.0)
        h2 = rng.uniform(25.0, 80.0)
        a, b, c = rng.uniform(0.0, 0.2), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.4)
        rows.append(a + b * 2.0 ** (-tau / h1) + c * 2.0 ** (-tau / h2) + noise * rng.standard_normal(tau.size))
    return np.array(rows), np.ones((n, tau.size)), tau


def cases(rng):
    """Registry cases: (Y, W, tau, grid, lo, hi) packed in Case.x, as emostats.decay builds them."""
    from tests.naive.registry import Case

    for name, (Y, W, tau) in [("two_component_curves", curve_set(rng)),
                              ("uneven_tau", curve_set(rng, tau=np.unique(np.round(np.geomspace(1, 150, 60))))),
                              ("noisy_one_component", _one_component(rng))]:
        span = float(tau[-1] - tau[0])
        lo, hi = 0.1 / math.log(2), 10.0 * span / math.log(2)
        grid = np.linspace(math.log(lo), math.log(hi), 28)
        yield Case(name, (Y, W, tau, grid, math.log(lo), math.log(hi)), np.array([0]))


def _one_component(rng):
    tau = np.arange(1.0, 101.0)
    Y = np.array([0.1 + 0.7 * 2.0 ** (-tau / h) + 0.02 * rng.standard_normal(tau.size) for h in (4.0, 12.0, 30.0)])
    return Y, np.ones_like(Y), tau
