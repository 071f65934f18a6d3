"""One-sample tests of a location against ``popmean``: t-test, Wilcoxon signed-rank, sign test."""

import functools

import numpy as np
import xarray as xr
from scipy import special, stats

from ..errors import EmostatsError
from ._common import check_alternative, warn_degenerate

__all__ = ["one_sample_tests"]

_VARS = {
    "n": ("values used (NaN dropped)", np.int64),
    "mean": ("mean", np.float64),
    "median": ("median", np.float64),
    "n_positive": ("values > popmean", np.int64),
    "n_negative": ("values < popmean", np.int64),
    "t": ("one-sample t statistic", np.float64),
    "t_p": ("t-test p-value", np.float64),
    "ci_low": ("95% t confidence interval of the mean, lower", np.float64),
    "ci_high": ("95% t confidence interval of the mean, upper", np.float64),
    "wilcoxon_W": ("Wilcoxon signed-rank statistic W+ (sum of positive ranks)", np.float64),
    "wilcoxon_p": ("Wilcoxon signed-rank p-value", np.float64),
    "wilcoxon_exact": ("Wilcoxon p from the exact null distribution", bool),
    "sign_p": ("sign test (binomial, p=1/2) p-value", np.float64),
}


@functools.lru_cache(maxsize=256)
def _signed_rank_null(ranks2):
    """Null distribution of W2 = sum of the doubled ranks given a + sign, each sign
    +/- with probability 1/2 independently (all 2**m sign patterns)."""
    pmf = np.zeros(sum(ranks2) + 1)
    pmf[0] = 1.0
    top = 0
    for r in ranks2:
        shifted = np.zeros_like(pmf)
        shifted[r:top + r + 1] = pmf[:top + 1]
        pmf = 0.5 * (pmf + shifted)
        top += r
    return pmf


def _tail_p(pmf, w2, alternative):
    ge = min(1.0, pmf[w2:].sum())
    le = min(1.0, pmf[: w2 + 1].sum())
    if alternative == "greater":
        return ge
    if alternative == "less":
        return le
    return min(1.0, 2.0 * min(ge, le))


def _wilcoxon(d, alternative, correction, method):
    """W+ and p for differences ``d`` (no NaN); zeros dropped (Wilcoxon's rule).

    ``method="auto"`` is scipy's ``wilcoxon(method="auto")`` rule: more than 50
    values -> normal approximation; else, without ties or zeros -> exact null
    distribution; else up to 13 values -> exact distribution of all sign flips;
    else the normal approximation. ``"exact"`` always uses the exact
    distribution of the sign flips of the (tied) ranks; ``"asymptotic"`` the
    normal approximation with tie correction.
    """
    n_all = d.shape[0]
    nz = d[d != 0]
    m = nz.shape[0]
    if m == 0:
        return np.nan, np.nan, False
    r = stats.rankdata(np.abs(nz))
    w = float(r[nz > 0].sum())
    _, tie_counts = np.unique(np.abs(nz), return_counts=True)
    has_ties = bool((tie_counts > 1).any())
    if method == "auto":
        exact = n_all <= 50 and (not (has_ties or m < n_all) or n_all <= 13)
    else:
        exact = method == "exact"
    if exact:
        pmf = _signed_rank_null(tuple(int(v) for v in np.rint(2 * r)))
        return w, _tail_p(pmf, int(round(2 * w)), alternative), True
    mean = m * (m + 1) / 4.0
    var = (m * (m + 1) * (2 * m + 1) - (tie_counts ** 3 - tie_counts).sum() / 2.0) / 24.0
    se = np.sqrt(var)
    z = (w - mean) / se
    if correction:
        sign = {"greater": 1.0, "less": -1.0}.get(alternative, np.sign(z))
        z -= sign * 0.5 / se
    if alternative == "greater":
        p = special.ndtr(-z)
    elif alternative == "less":
        p = special.ndtr(z)
    else:
        p = 2.0 * special.ndtr(-abs(z))
    return w, float(min(p, 1.0)), False


def _sign_p(n_pos, n_nonzero, alternative):
    if n_nonzero == 0:
        return np.nan
    return float(stats.binomtest(int(n_pos), int(n_nonzero), 0.5, alternative=alternative).pvalue)


def _row(x, popmean, alternative, correction, method):
    x = x[~np.isnan(x)]
    n = x.shape[0]
    out = dict.fromkeys(_VARS, np.nan)
    out.update(n=n, n_positive=0, n_negative=0, wilcoxon_exact=False)
    if n == 0:
        return out, True
    d = x - popmean
    out.update(mean=float(x.mean()), median=float(np.median(x)),
               n_positive=int((d > 0).sum()), n_negative=int((d < 0).sum()))
    degenerate = False
    if n >= 2:
        mean = x.mean()
        sd = np.sqrt(((x - mean) ** 2).sum() / (n - 1))
        # equal values can leave a rounding-sized sd (0.2 three times: sd ~3e-17, t ~1e16): zero spread
        if sd > 0 and x.max() > x.min():
            se = sd / np.sqrt(n)
            t = (mean - popmean) / se
            df = n - 1
            if alternative == "greater":
                p = special.stdtr(df, -t)
            elif alternative == "less":
                p = special.stdtr(df, t)
            else:
                p = 2.0 * special.stdtr(df, -abs(t))
            half = special.stdtrit(df, 0.975) * se
            out.update(t=float(t), t_p=float(p), ci_low=float(mean - half), ci_high=float(mean + half))
        else:
            degenerate = True
    else:
        degenerate = True
    w, wp, ex = _wilcoxon(d, alternative, correction, method)
    out.update(wilcoxon_W=w, wilcoxon_p=wp, wilcoxon_exact=ex)
    n_nonzero = out["n_positive"] + out["n_negative"]
    out["sign_p"] = _sign_p(out["n_positive"], n_nonzero, alternative)
    return out, degenerate or n_nonzero == 0


def one_sample_tests(x, dim=None, popmean=0.0, alternative="two-sided", correction=False,
                     wilcoxon_method="auto"):
    """t-test, Wilcoxon signed-rank test and sign test of ``x`` against ``popmean``.

    NaN values are dropped (``n`` counts what is left). Every test is
    two-sided unless ``alternative`` says otherwise ("greater": location above
    ``popmean``).

    - t-test: ``t = (mean - popmean) / (sd / sqrt(n))`` with ``sd`` of
      ``ddof=1``, ``n - 1`` degrees of freedom (as ``scipy.stats.ttest_1samp``);
      ``ci_low``/``ci_high`` is the two-sided 95% t interval of the mean.
    - Wilcoxon signed-rank on ``d = x - popmean``: zeros dropped, average
      ranks of ``|d|`` for ties; ``wilcoxon_W`` is W+ (sum of the ranks of
      positive ``d``, R's ``V``; scipy reports min(W+, W-) when two-sided); the
      p-value follows scipy's ``wilcoxon(method="auto")``: exact null
      distribution for at most 50 values without ties or zeros, exact
      distribution of all sign flips for at most 13 values with ties or zeros,
      else the normal approximation with tie correction (continuity correction
      when ``correction=True``, as R's default).
    - sign test: ``n_positive`` of the nonzero ``d`` against Binomial(n, 1/2),
      as ``scipy.stats.binomtest`` / R's ``binom.test``.

    Degenerate cases are NaN, never inf or 0, with a ``DegenerateWarning``:
    fewer than 2 values or zero spread (t-test: t, t_p and the interval are NaN,
    even if the constant differs from ``popmean``); no nonzero difference
    (Wilcoxon and sign test NaN); no values (everything NaN, counts 0).

    Parameters
    ----------
    x : xarray.DataArray or array_like
    dim : str or sequence of str or int, optional
        The sample dims (default: all dims; an int axis for arrays). The other
        dims are batch dims, one test per position.
    popmean : float
    alternative : {"two-sided", "greater", "less"}
    correction : bool
        Continuity correction of the Wilcoxon normal approximation.
    wilcoxon_method : {"auto", "exact", "asymptotic"}
        "auto" as described above; "exact" uses the exact distribution of all
        sign flips of the (tied) ranks for any n; "asymptotic" the normal
        approximation (R's ``exact=FALSE``).

    Returns
    -------
    xarray.Dataset
        ``n``, ``mean``, ``median``, ``n_positive``, ``n_negative``, ``t``,
        ``t_p``, ``ci_low``, ``ci_high``, ``wilcoxon_W``, ``wilcoxon_p``,
        ``wilcoxon_exact``, ``sign_p`` over the batch dims.

    Examples
    --------
    >>> res = one_sample_tests(np.array([0.3, -0.1, 0.5, 0.7, 0.2, 0.4]))
    >>> int(res.n_positive), round(float(res.t_p), 4), float(res.wilcoxon_p), round(float(res.sign_p), 4)
    (5, 0.0305, 0.0625, 0.2188)
    """
    check_alternative(alternative)
    if wilcoxon_method not in ("auto", "exact", "asymptotic"):
        raise EmostatsError(f"one_sample_tests: wilcoxon_method={wilcoxon_method!r} is not one of "
                            f"'auto', 'exact', 'asymptotic'")
    if isinstance(x, xr.DataArray):
        sample = list(x.dims) if dim is None else ([dim] if isinstance(dim, str) else list(dim))
        missing = [d for d in sample if d not in x.dims]
        if missing:
            raise EmostatsError(f"one_sample_tests: dims {missing} are not dims of x {x.dims}")
        batch = [d for d in x.dims if d not in sample]
        sample_dims = " ".join(map(str, sample))
        arr = x.transpose(*batch, *sample).values
        coords = {k: c for k, c in x.coords.items() if set(c.dims) <= set(batch)}
    else:
        arr = np.asarray(x, dtype=np.float64)
        sample_dims = "all" if dim is None else f"axis {dim}"
        if dim is None:
            arr = arr.reshape(1, -1)[0] if arr.ndim else arr.reshape(1)
            batch = []
        else:
            if not isinstance(dim, (int, np.integer)):
                raise EmostatsError(f"one_sample_tests: dim must be an int axis for arrays, got {dim!r}")
            arr = np.moveaxis(arr, dim, -1)
            batch = [f"dim_{i}" for i in range(arr.ndim - 1)]
        coords = None
    arr = np.asarray(arr, dtype=np.float64)
    if np.isinf(arr).any():
        raise EmostatsError("one_sample_tests: x contains inf; set such values to NaN to drop them")
    bshape = arr.shape[: len(batch)]
    rows = arr.reshape(int(np.prod(bshape, dtype=np.int64)), -1)
    results = {k: np.empty(rows.shape[0], dtype=t) for k, (_, t) in _VARS.items()}
    n_bad = 0
    for i, row in enumerate(rows):
        out, bad = _row(row, float(popmean), alternative, correction, wilcoxon_method)
        n_bad += bad
        for k in _VARS:
            results[k][i] = out[k]
    warn_degenerate(n_bad, "one_sample_tests", "fewer than 2 values, zero spread, or no nonzero difference")
    ds = xr.Dataset({k: (batch, results[k].reshape(bshape), {"long_name": _VARS[k][0]}) for k in _VARS},
                    coords=coords)
    ds.attrs.update(test="one_sample", sample_dims=sample_dims, popmean=float(popmean),
                    alternative=alternative,
                    wilcoxon_correction=int(bool(correction)), wilcoxon_zero_method="wilcox",
                    wilcoxon_method=wilcoxon_method)
    return ds
