"""Causal effect of a steering pulse on the steered emotion's probe (SPEC.md
analysis 11, the study's Figure 6).

For an emotion ``e`` steered at offset 0, the *contrast* at each token is
``e``'s probe activation minus the mean of the other probes' activations. Per
(emotion, offset)::

    z = (mean steered contrast - mean baseline contrast) / sqrt(se_s^2 + se_b^2),
    se = sd(ddof=1) / sqrt(n),

with the baseline contrast computed from the no-pulse samples for the same
emotion's probe. p is two-sided from the standard normal; BH-FDR runs across
the emotions at each offset (one family per offset); significant means
``q <= alpha``; ``n_persistent`` counts significant ``z > 0`` and
``n_antipersistent`` significant ``z < 0``.
"""

import numpy as np
import xarray as xr
from scipy import special

from . import defaults as D
from .errors import MissingGroupError, StudyError
from .stats import bh_fdr

__all__ = ["steering_effect"]


def _steering_group(steering):
    if isinstance(steering, xr.DataTree):
        if "steering" not in steering.children:
            raise MissingGroupError("/steering: group missing; the steering analysis (Figure 6) needs "
                                    "steered_act and baseline_act")
        steering = steering["steering"].to_dataset()
    if not isinstance(steering, xr.Dataset):
        raise StudyError(f"steering must be the /steering Dataset or a study DataTree, "
                         f"got {type(steering).__name__}")
    expected = {"steered_act": ("emotion", "sample", "offset", "probe"),
                "baseline_act": ("baseline_sample", "offset", "probe")}
    for name, dims in expected.items():
        if name not in steering.data_vars:
            raise MissingGroupError(f"/steering: variable {name} missing; expected {name}{dims}")
        if set(steering[name].dims) != set(dims):
            raise StudyError(f"/steering: {name} has dims {steering[name].dims}, expected {dims}")
    return steering


def _own_probe(steering):
    """Position in ``probe`` of every ``emotion`` (a DataArray over ``emotion``)."""
    probes = [str(p) for p in steering["probe"].values]
    if len(probes) < 2:
        raise StudyError(f"/steering: probe has {len(probes)} entry; the contrast needs at least 2 probes")
    where = {p: i for i, p in enumerate(probes)}
    emotions = [str(e) for e in steering["emotion"].values]
    missing = [e for e in emotions if e not in where]
    if missing:
        raise StudyError(f"/steering: emotion {missing[0]!r} (index {emotions.index(missing[0])}) is not "
                         f"a name in the probe coordinate; emotion must hold probe names")
    return xr.DataArray(np.array([where[e] for e in emotions], dtype=np.int64), dims="emotion")


def _contrast(act, own):
    """act(..., probe), own (...) broadcasting -> own probe minus mean of the others, in
    float64 (NaN propagates)."""
    n_probes = act.shape[-1]
    own = np.broadcast_to(own, np.broadcast_shapes(np.shape(own), act.shape[:-1]))
    total = act.sum(axis=-1, dtype=np.float64)
    mine = np.take_along_axis(act, own[..., None], axis=-1)[..., 0].astype(np.float64)
    return mine - (total - mine) / (n_probes - 1)


def _moments(contrast, dim):
    n = contrast.count(dim)
    mean = contrast.mean(dim, skipna=True)
    sd = contrast.std(dim, ddof=1, skipna=True)
    se = sd / np.sqrt(n.where(n > 0))
    return mean, se.where(n >= 2), n


def steering_effect(steering, alpha=D.ALPHA):
    """Per (emotion, offset) z-score of the steered emotion's contrast against baseline.

    Parameters
    ----------
    steering : xarray.Dataset or xarray.DataTree
        The ``/steering`` group (or a study holding it): ``steered_act(emotion,
        sample, offset, probe)`` and ``baseline_act(baseline_sample, offset,
        probe)``; ``emotion`` holds probe names. In memory or dask-backed.
    alpha : float
        FDR level: significant means ``q <= alpha``.

    Returns
    -------
    xarray.Dataset
        Over (emotion, offset): ``z``, ``p`` (two-sided normal), ``q`` (BH across
        emotions at each offset), ``significant``, ``effect`` (difference of the
        mean contrasts), ``mean_steered``, ``mean_baseline``, ``se_steered``,
        ``se_baseline``, ``n_steered``, ``n_baseline`` (non-NaN samples); over
        offset: ``n_persistent``, ``n_antipersistent``, ``n_tested`` and the
        fractions ``frac_persistent``, ``frac_antipersistent``. NaN samples
        (any probe NaN at that token) are dropped per (emotion, offset); z is NaN
        when a side has fewer than 2 samples or both sides are constant.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> steer = xr.Dataset(
    ...     {"steered_act": (("emotion", "sample", "offset", "probe"), rng.normal(size=(2, 20, 3, 3)) + 2.0),
    ...      "baseline_act": (("baseline_sample", "offset", "probe"), rng.normal(size=(20, 3, 3)))},
    ...     coords={"emotion": ["calm", "happy"], "probe": ["calm", "happy", "sad"]})
    >>> res = steering_effect(steer)
    >>> res["z"].dims, int(res["n_tested"][0])
    (('emotion', 'offset'), 2)
    """
    steering = _steering_group(steering)
    if not (isinstance(alpha, (int, float, np.floating)) and 0 < alpha < 1):
        raise StudyError(f"alpha must be a number in (0, 1), got {alpha!r}")
    own = _own_probe(steering)
    steered = steering["steered_act"].transpose("emotion", "sample", "offset", "probe")
    baseline = steering["baseline_act"].transpose("baseline_sample", "offset", "probe")
    if steered.chunks is not None:
        steered = steered.chunk({"probe": -1})
    if baseline.chunks is not None:
        baseline = baseline.chunk({"probe": -1})
    c_steered = xr.apply_ufunc(
        _contrast, steered, own, input_core_dims=[["probe"], []],
        dask="parallelized", output_dtypes=[np.float64])
    c_baseline = xr.apply_ufunc(
        lambda a, o: _contrast(a[..., None, :], o), baseline, own,
        input_core_dims=[["probe"], ["emotion"]], output_core_dims=[["emotion"]],
        dask="parallelized", output_dtypes=[np.float64])
    m_s, se_s, n_s = _moments(c_steered, "sample")
    m_b, se_b, n_b = _moments(c_baseline, "baseline_sample")
    m_s, se_s, n_s, m_b, se_b, n_b = (x.transpose("emotion", "offset").compute()
                                      for x in (m_s, se_s, n_s, m_b, se_b, n_b))
    effect = m_s - m_b
    denom = np.sqrt(se_s ** 2 + se_b ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (effect / denom).where(denom > 0)
    p = xr.apply_ufunc(lambda x: special.erfc(np.abs(x) / np.sqrt(2.0)), z)
    fdr = bh_fdr(p, alpha=alpha, dims="emotion")
    q = fdr["q"]
    significant = fdr["reject"]
    tested = p.notnull().sum("emotion")
    n_pos = (significant & (z > 0)).sum("emotion")
    n_neg = (significant & (z < 0)).sum("emotion")
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_pos = (n_pos / tested).where(tested > 0)
        frac_neg = (n_neg / tested).where(tested > 0)
    eo = ("emotion", "offset")
    ds = xr.Dataset(
        {
            "z": (eo, z.values, {"long_name": "causal effect z-score (steered - baseline contrast)"}),
            "p": (eo, p.values, {"long_name": "two-sided normal p-value"}),
            "q": (eo, q.values, {"long_name": "BH-FDR q across emotions at each offset"}),
            "significant": (eo, significant.values, {"long_name": f"q <= {alpha}"}),
            "effect": (eo, effect.values, {"long_name": "mean steered contrast - mean baseline contrast"}),
            "mean_steered": (eo, m_s.values, {"long_name": "mean contrast under steering"}),
            "mean_baseline": (eo, m_b.values, {"long_name": "mean contrast without steering"}),
            "se_steered": (eo, se_s.values, {"long_name": "standard error of the steered mean (sd ddof=1 / sqrt n)"}),
            "se_baseline": (eo, se_b.values, {"long_name": "standard error of the baseline mean (sd ddof=1 / sqrt n)"}),
            "n_steered": (eo, n_s.values.astype(np.int64), {"long_name": "steered samples used"}),
            "n_baseline": (eo, n_b.values.astype(np.int64), {"long_name": "baseline samples used"}),
            "n_persistent": ("offset", n_pos.values.astype(np.int64),
                             {"long_name": "emotions significantly elevated (q <= alpha, z > 0)"}),
            "n_antipersistent": ("offset", n_neg.values.astype(np.int64),
                                 {"long_name": "emotions significantly suppressed (q <= alpha, z < 0)"}),
            "n_tested": ("offset", tested.values.astype(np.int64), {"long_name": "emotions with a defined z"}),
            "frac_persistent": ("offset", frac_pos.values, {"long_name": "fraction of tested emotions elevated"}),
            "frac_antipersistent": ("offset", frac_neg.values,
                                    {"long_name": "fraction of tested emotions suppressed"}),
        },
        coords={"emotion": steering["emotion"].values, "offset": steering["offset"].values
                if "offset" in steering.coords else np.arange(steering.sizes["offset"])},
        attrs={"analysis": "steering_effect", "alpha": float(alpha),
               "contrast": "own probe - mean of the other probes", "fdr": "BH across emotions at each offset",
               "p": "two-sided standard normal", "p_method": "normal (z of the difference of means, "
               "SPEC analysis 11; not a t-test)", "n_probes": int(steering.sizes["probe"])},
    )
    return ds
