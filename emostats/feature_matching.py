"""SAE features against the probe subspace: the variance-matched residual firing persistence of Figure 7
(SPEC.md analysis 8).

Each included feature's firing persistence (:func:`emostats.sae.firing_persistence`) minus that of
the features nearest to it in variance explained, correlated with the fraction of its decoder norm
in the span of the probe vectors. :mod:`emostats.sae` re-exports the public names.
"""

import numpy as np
import xarray as xr

from .errors import MissingGroupError, StudyError

__all__ = ["feature_table", "aligned_to_table", "matched_residuals", "sae_matched"]


def _features_group(features):
    """(/features Dataset, /probes vector or None) from a DataTree or a Dataset."""
    vectors = None
    if isinstance(features, xr.DataTree):
        if "probes" in features.children and "vector" in features["probes"].data_vars:
            vectors = features["probes"]["vector"]
        if "features" not in features.children:
            raise MissingGroupError("/features: group missing; the SAE analyses need variance_explained "
                                    "and subspace_fraction (or decoder) per feature")
        features = features["features"].to_dataset()
    if not isinstance(features, xr.Dataset):
        raise StudyError(f"expected the /features Dataset or a study DataTree, got {type(features).__name__}")
    return features, vectors


def feature_table(features, probe_vectors=None, need=("variance_explained", "subspace_fraction")):
    """The per-feature variables the SAE analyses use, as a Dataset over ``feature``.

    ``subspace_fraction`` is taken from ``/features`` when stored; otherwise it
    is computed from ``decoder`` and the probe vectors
    (:func:`emostats.subspace_fraction`), which come from ``probe_vectors`` or
    the study's ``/probes/vector``.
    """
    ds, vectors = _features_group(features)
    if probe_vectors is not None:
        vectors = probe_vectors
    out = {}
    for name in need:
        if name in ds.data_vars:
            out[name] = ds[name]
        elif name == "subspace_fraction" and "decoder" in ds.data_vars and vectors is not None:
            from .geometry import subspace_fraction

            frac = subspace_fraction(ds["decoder"], vectors)
            frac = frac if isinstance(frac, xr.DataArray) else frac["fraction"]
            out[name] = frac
        else:
            hint = (" (or decoder(feature, hidden) with /probes/vector)" if name == "subspace_fraction" else "")
            raise MissingGroupError(f"/features: variable {name} missing; expected {name}(feature){hint}")
    for name in ("self_rating", "text_rating"):
        if name in ds.data_vars and name not in out:
            out[name] = ds[name]
    table = xr.Dataset({k: v.astype(np.float64) for k, v in out.items()})
    if "feature" not in table.coords:
        table = table.assign_coords(feature=np.arange(table.sizes["feature"]))
    return table


def aligned_to_table(persistence, table):
    """``persistence`` (of :func:`emostats.sae.firing_persistence`) checked to hold the features of
    ``table`` in the same order; a :class:`StudyError` naming both feature sets if not."""
    if not isinstance(persistence, xr.Dataset) or "persistence" not in persistence or "included" not in persistence:
        raise StudyError("persistence must be the Dataset of firing_persistence (persistence, included)")
    if persistence.sizes["feature"] != table.sizes["feature"] or not np.array_equal(
            persistence["feature"].values, table["feature"].values):
        raise StudyError(f"/features: {table.sizes['feature']} features with ids "
                         f"{table['feature'].values[:3].tolist()}... do not match the "
                         f"{persistence.sizes['feature']} features of the firing persistence; "
                         f"compute firing_persistence on the same study (n_features = size of /features)")
    return persistence


def matched_residuals(persistence, table, n=20, stat="median", threads=None):
    """Variance-matched residual persistence of every included feature (the feature itself excluded).

    Excluded features (``included = False``), and features with NaN persistence
    or variance explained, are neither targets nor candidates (NaN residual).
    Returns the Dataset of :func:`emostats.variance_matched` over ``target`` =
    features.
    """
    from .nullmodels import variance_matched

    values = persistence["persistence"].where(persistence["included"])
    return variance_matched(values.values, table["variance_explained"].values, n=n, stat=stat, threads=threads)


def sae_matched(persistence, features, n=20, stat="median", *, probe_vectors=None, threads=None):
    """Residual SAE persistence above variance-matched features, against subspace fraction (Figure 7).

    Each included feature is matched to the ``n`` other included features
    nearest in variance explained; its residual is its firing persistence
    minus the ``stat`` (median) of theirs. Then the Spearman correlation of the
    residual with the feature's subspace fraction (pairs with NaN dropped).

    Parameters
    ----------
    persistence : xarray.Dataset
        The result of :func:`firing_persistence` on the same features.
    features : xarray.Dataset or xarray.DataTree
        ``/features`` (``variance_explained``, and ``subspace_fraction`` or
        ``decoder``) or a study holding it (its ``/probes/vector`` serves to
        compute subspace fractions from decoders).
    n : int
        Matched features per target.
    stat : {"median", "mean"}
        Baseline statistic of the matched values.
    probe_vectors : xarray.DataArray (probe, hidden), optional
        Probe vectors for computing subspace fractions from decoders.
    threads : int, optional

    Returns
    -------
    xarray.Dataset
        Over ``feature``: ``residual``, ``baseline``, ``persistence``,
        ``included``, ``variance_explained``, ``subspace_fraction``,
        ``matched(feature, match)`` (positions of the matched features, -1 for
        none); scalars ``rho``, ``p``, ``n`` (Spearman of residual and
        subspace fraction) and the one-sample tests of the residuals
        (``mean``, ``n_positive``, ``t_p``, ``wilcoxon_p``, ``sign_p``, ...).

    Examples
    --------
    >>> from emostats import synth
    >>> from emostats.sae import firing_persistence
    >>> tree, _ = synth.make_study(n_tokens=4000, n_probes=6, n_features=120, k=8, hidden=24, seed=2,
    ...                            groups=["tokens", "features"])
    >>> per = firing_persistence(tree, min_fires=20)
    >>> res = sae_matched(per, tree, n=5)
    >>> int(res["n"]) == int((per["included"] & per["persistence"].notnull()).sum())
    True
    """
    from .stats import spearman

    table = feature_table(features, probe_vectors)
    persistence = aligned_to_table(persistence, table)
    vm = matched_residuals(persistence, table, n=n, stat=stat, threads=threads)
    residual = xr.DataArray(vm["residual"].values, dims="feature", coords={"feature": table["feature"].values})
    sp = spearman(residual, table["subspace_fraction"], dim="feature")
    f = ("feature",)
    ds = xr.Dataset(
        {
            "residual": (f, residual.values, {"long_name": f"firing persistence minus {stat} of {n} variance-matched features"}),
            "baseline": (f, vm["baseline"].values, {"long_name": f"{stat} persistence of the matched features"}),
            "persistence": (f, persistence["persistence"].values, {"long_name": "firing persistence"}),
            "included": (f, persistence["included"].values, {"long_name": "fires at least min_fires times"}),
            "variance_explained": (f, table["variance_explained"].values, {"long_name": "variance explained"}),
            "subspace_fraction": (f, table["subspace_fraction"].values,
                                  {"long_name": "fraction of the decoder norm in the probe span"}),
            "matched": (("feature", "match"), vm["matched"].values,
                        {"long_name": "positions of the matched features (nearest first; -1 = none)"}),
            "rho": ((), float(sp["rho"]), {"long_name": "Spearman rho of residual and subspace fraction"}),
            "p": ((), float(sp["p"]), {"long_name": "two-sided p of rho"}),
            "p_method": ((), str(sp["p_method"].values), {"long_name": "Spearman p rule used (R cor.test)"}),
            "n": ((), int(sp["n"]), {"long_name": "features in the correlation"}),
        },
        coords={"feature": table["feature"].values, "match": np.arange(int(n))},
        attrs={"analysis": "sae_matched", "n_match": int(n), "stat": stat,
               "lag": persistence.attrs.get("lag", -1), "min_fires": persistence.attrs.get("min_fires", -1),
               "matching": "included features only; a feature never matches itself"},
    )
    for name in ("mean", "median", "n_positive", "n_negative", "t", "t_p", "wilcoxon_W", "wilcoxon_p",
                 "sign_p", "ci_low", "ci_high"):
        if name in vm and vm[name].ndim == 0:
            ds[f"residual_{name}"] = vm[name].assign_attrs(
                long_name=f"{vm[name].attrs.get('long_name', name)} (residuals)")
    return ds
