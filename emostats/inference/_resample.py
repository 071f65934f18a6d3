"""Resampling over conversations: weights, intervals, the conversation-level test, placebo ranks.

NumPy level. A *replicate* of a statistic is the statistic recomputed from
per-conversation sufficient statistics merged with one row of a weight matrix
``W`` (replicate, conversation): the bootstrap draws whole conversations with
replacement (multinomial counts), the jackknife leaves one conversation out
(weights 1 with one 0). Every statistic of :mod:`emostats.inference` is a
function of such a weighted merge, so no replicate re-reads tokens.

Choices (see ``docs/inference.md``):

- **Interval: percentile by default.** The headline numbers include medians
  of matched neighbours, re-matching by variance explained, ranks (Spearman)
  and BH-significant counts: non-smooth statistics for which BCa's jackknife
  estimate of the acceleration is unreliable, and with 24 conversations (the
  shipped example) the acceleration itself rests on 24 leave-one-out values.
  The percentile interval is transformation-respecting and stays inside the
  statistic's range (a correlation's interval inside [-1, 1], a count's
  inside 0..n). BCa is computed too (``interval="bca"``) for smooth
  statistics on many conversations.
- **Conversation-level p: the cluster jackknife t-test.** ``t = (theta - theta0)
  / se_jack`` against Student's t with ``G - 1`` degrees of freedom, where
  ``se_jack`` is the leave-one-conversation-out jackknife standard error. The
  jackknife variance is biased upward (Efron and Stein 1981), so the test errs
  on the conservative side; with few clusters a t reference with ``G - 1``
  df is the standard small-sample cluster correction (it is CR3 for a mean).
  Its calibration is tested on the null worlds of :mod:`emostats.synth`.
"""

import numpy as np

from .._nan import nanmean
from ..errors import EmostatsError

__all__ = ["bootstrap_weights", "jackknife_weights", "percentile_interval", "bca_interval", "jackknife_se",
           "jackknife_p", "placebo_rank"]


def bootstrap_weights(n_groups, n_boot, seed):
    """Multinomial counts (n_boot, n_groups): ``n_groups`` conversations drawn with replacement per row.

    Examples
    --------
    >>> W = bootstrap_weights(5, 3, seed=1)
    >>> W.shape, W.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    n_groups, n_boot = int(n_groups), int(n_boot)
    if n_groups < 2:
        raise EmostatsError(f"bootstrap: {n_groups} conversation(s); resampling conversations needs at least 2")
    if n_boot < 1:
        raise EmostatsError(f"bootstrap: n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
    draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
    W = np.zeros((n_boot, n_groups))
    np.add.at(W, (np.repeat(np.arange(n_boot), n_groups), draws.ravel()), 1.0)
    return W


def jackknife_weights(n_groups):
    """Leave-one-out weights (n_groups, n_groups): row ``g`` drops conversation ``g``.

    Examples
    --------
    >>> jackknife_weights(3).tolist()
    [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    return 1.0 - np.eye(int(n_groups))


def _quantiles(reps, probs):
    """Quantiles over axis 0 ignoring NaN; NaN where fewer than half the replicates are finite."""
    reps = np.asarray(reps, dtype=np.float64)
    ok = np.isfinite(reps).sum(axis=0)
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(reps, probs, axis=0) if reps.size else np.full((len(probs),) + reps.shape[1:], np.nan)
    q = np.asarray(q)
    return np.where(ok >= max(1, reps.shape[0] // 2), q, np.nan)


def percentile_interval(reps, ci=0.95):
    """Percentile bootstrap interval (low, high) over axis 0 of the replicates.

    Examples
    --------
    >>> lo, hi = percentile_interval(np.arange(101.0), ci=0.9)
    >>> round(float(lo), 9), round(float(hi), 9)
    (5.0, 95.0)
    """
    a = (1.0 - float(ci)) / 2.0
    q = _quantiles(reps, [a, 1.0 - a])
    return q[0], q[1]


def bca_interval(reps, theta, jack, ci=0.95):
    """Bias-corrected and accelerated interval (Efron 1987) from bootstrap and jackknife replicates.

    ``z0 = Phi^-1(share of replicates < theta)`` (ties count half);
    acceleration ``a = sum(d^3) / (6 sum(d^2)^1.5)`` with ``d = mean(jack) - jack``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reps = rng.normal(size=4000)
    >>> lo, hi = bca_interval(reps, 0.0, rng.normal(size=30) * 0.01)
    >>> bool(-2.2 < lo < -1.8 and 1.8 < hi < 2.2)
    True
    """
    from scipy.special import ndtr, ndtri

    reps = np.asarray(reps, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    jack = np.asarray(jack, dtype=np.float64)
    finite = np.isfinite(reps)
    n_ok = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = (np.where(finite, reps < theta, False).sum(axis=0)
                 + 0.5 * np.where(finite, reps == theta, False).sum(axis=0))
        z0 = ndtri(np.clip(below / np.maximum(n_ok, 1), 1e-10, 1 - 1e-10))
        d = nanmean(jack, axis=0) - jack
        num = np.nansum(d ** 3, axis=0)
        den = 6.0 * np.nansum(d ** 2, axis=0) ** 1.5
        acc = np.where(den > 0, num / den, 0.0)
        a = (1.0 - float(ci)) / 2.0
        out = []
        for zq in (ndtri(a), ndtri(1 - a)):
            p = ndtr(z0 + (z0 + zq) / (1.0 - acc * (z0 + zq)))
            out.append(p)
    lo_p, hi_p = out
    shape = np.broadcast(theta, lo_p).shape
    lo = np.full(shape, np.nan)
    hi = np.full(shape, np.nan)
    flat_reps = reps.reshape(reps.shape[0], -1)
    lo_f, hi_f = np.broadcast_to(lo_p, shape).ravel(), np.broadcast_to(hi_p, shape).ravel()
    for i in range(flat_reps.shape[1]):
        col = flat_reps[:, i]
        col = col[np.isfinite(col)]
        if col.size >= max(1, reps.shape[0] // 2) and np.isfinite(lo_f[i]) and np.isfinite(hi_f[i]):
            lo.ravel()[i] = np.quantile(col, lo_f[i])
            hi.ravel()[i] = np.quantile(col, hi_f[i])
    return (lo[()], hi[()])


def jackknife_se(jack):
    """Jackknife standard error over axis 0 (leave-one-conversation-out replicates); NaN if any is NaN.

    Examples
    --------
    >>> x = np.array([1.0, 2.0, 4.0, 7.0])
    >>> jack = (x.sum() - x) / 3  # leave-one-out means
    >>> round(float(jackknife_se(jack)), 10) == round(float(x.std(ddof=1) / 2), 10)
    True
    """
    jack = np.asarray(jack, dtype=np.float64)
    g = jack.shape[0]
    with np.errstate(invalid="ignore"):
        dev = jack - jack.mean(axis=0)
        return np.sqrt((g - 1) / g * (dev ** 2).sum(axis=0))


def jackknife_p(theta, jack, null=0.0):
    """Two-sided conversation-level p of ``H0: theta = null``: jackknife t against t(G - 1).

    Examples
    --------
    >>> x = np.array([0.3, 0.1, 0.4, 0.2, 0.5, 0.6])
    >>> jack = (x.sum() - x) / 5
    >>> from scipy import stats
    >>> bool(np.isclose(jackknife_p(x.mean(), jack), stats.ttest_1samp(x, 0).pvalue))
    True
    """
    from scipy.stats import t as student_t

    jack = np.asarray(jack, dtype=np.float64)
    se = jackknife_se(jack)
    g = jack.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        tstat = (np.asarray(theta, dtype=np.float64) - null) / se
        p = 2.0 * student_t.sf(np.abs(tstat), df=g - 1)
    return np.where(np.isfinite(tstat) | (se == 0), np.where(se == 0, np.nan, p), np.nan)[()]


def placebo_rank(value, draws):
    """(percentile 0-100, two-sided placebo p) of ``value`` among placebo ``draws`` (axis 0).

    percentile = 100 (#{draw < value} + #{draw = value} / 2) / n;
    p = min(1, 2 min(1 + #{draw <= value}, 1 + #{draw >= value}) / (1 + n)),
    never 0 (the observed value counts as one draw of the null).

    Examples
    --------
    >>> placebo_rank(3.5, np.arange(10.0))
    (40.0, 0.9090909090909091)
    >>> placebo_rank(-1.0, np.arange(10.0))[1]
    0.18181818181818182
    """
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    value = float(value)
    if draws.size == 0 or not np.isfinite(value):
        return float("nan"), float("nan")
    n = draws.size
    less, equal = int((draws < value).sum()), int((draws == value).sum())
    pct = 100.0 * (less + 0.5 * equal) / n
    p = min(1.0, 2.0 * min(1 + less + equal, 1 + n - less) / (1 + n))
    return pct, p
