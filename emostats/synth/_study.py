"""Assembly of a synthetic study tree and its truth (the formulas are in :mod:`emostats.synth`)."""

import datetime as _dt
import json

import numpy as np
import xarray as xr

from .._version import __version__
from ..errors import EmostatsError
from . import _design, _sae, _steering, _tokens
from .._cf import cf_label

GROUPS = ("tokens", "features", "probes", "moments", "steering", "evaluations", "random")


def probe_names(n_probes=171):
    """The first ``n_probes`` emotion names of the paper, in its order.

    Examples
    --------
    >>> probe_names(3)
    ['afraid', 'alarmed', 'alert']
    """
    import importlib.resources

    text = (importlib.resources.files("emostats") / "data" / "emotions_171.txt").read_text()
    names = [w.strip() for w in text.splitlines() if w.strip()]
    if not 1 <= n_probes <= len(names):
        raise EmostatsError(f"n_probes={n_probes} is out of range; expected 1..{len(names)} "
                            f"(the paper's emotion list)")
    return names[:n_probes]

def _check(n_tokens, n_probes, n_features, k, hidden, turn_length, lags, n_offsets, groups):
    def pos_int(name, value, minimum=1):
        if int(value) != value or value < minimum:
            raise EmostatsError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")

    pos_int("n_tokens", n_tokens, 2)
    pos_int("n_probes", n_probes)
    pos_int("n_features", n_features, 0)
    pos_int("k", k)
    pos_int("hidden", hidden, 2)
    pos_int("n_offsets", n_offsets)
    if len(turn_length) != 2 or not 1 <= turn_length[0] <= turn_length[1]:
        raise EmostatsError(f"turn_length={tuple(turn_length)!r} is invalid; expected (min, max) with 1 <= min <= max")
    for L in lags:
        pos_int("lag", L)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise EmostatsError(f"unknown group(s) {', '.join(unknown)}; expected some of {', '.join(GROUPS)}")

def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn (via pingouin)
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")

def _make_study(n_tokens, n_probes, n_features, k, hidden, n_conversations, turn_length, n_rated,
                n_steer_emotions, n_steer_samples, n_baseline, n_offsets, lags, seed, groups,
                decoder, random_directions, phi_slow, phi_fast, dtype, keep_bits, threads):
    lags = tuple(int(L) for L in np.atleast_1d(lags))
    if groups is None:
        groups = [g for g in GROUPS if g != "random" or random_directions]
    groups = tuple(groups)
    _check(n_tokens, n_probes, n_features, k, hidden, turn_length, lags, n_offsets, groups)
    if n_features == 0:
        groups = tuple(g for g in groups if g not in ("features", "evaluations"))
    n_tokens, n_probes, n_features, k, hidden = map(int, (n_tokens, n_probes, n_features, k, hidden))
    if n_rated is None:
        n_rated = min(1000, max(1, round(0.15 * n_features)))
    if n_features and not 0 <= n_rated <= n_features:  # never shrink a request silently
        raise EmostatsError(f"n_rated={n_rated} is invalid; expected 0..n_features ({n_features})")
    n_rated = int(min(n_rated, n_features))
    if n_steer_emotions is None:
        n_steer_emotions = min(24, n_probes)
    if not 1 <= n_steer_emotions <= n_probes:
        raise EmostatsError(f"n_steer_emotions={n_steer_emotions} is invalid; expected 1..n_probes ({n_probes})")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise EmostatsError(f"dtype={dtype} is invalid; expected float32 or float64")
    names = probe_names(n_probes)
    hid = _design.make_hidden(hidden, n_probes, seed, phi_slow=phi_slow, phi_fast=phi_fast)
    offsets, conversation, turn, position = _design.make_segments(n_tokens, turn_length, n_conversations, seed)

    params = dict(n_tokens=n_tokens, n_probes=n_probes, n_features=n_features, k=k, hidden=hidden,
                  n_conversations=n_conversations, turn_length=list(map(int, turn_length)), n_rated=n_rated,
                  n_steer_emotions=int(n_steer_emotions), n_steer_samples=int(n_steer_samples),
                  n_baseline=int(n_baseline), n_offsets=int(n_offsets), lags=list(lags), seed=int(seed),
                  groups=list(groups), decoder=decoder, random_directions=int(random_directions),
                  phi_slow=float(phi_slow), phi_fast=float(phi_fast), dtype=str(dtype),
                  keep_bits=None if keep_bits is None else int(keep_bits))
    tree = {}
    truth_vars, truth_attrs = {}, {"phi_slow": hid.phi_slow, "phi_fast": hid.phi_fast, "sigma2": hid.sigma2,
                                   "n_latent": hid.m, "n_emotion_directions": n_probes, "seed": int(seed),
                                   "lags": list(lags), "moments_ddof": 0}
    # ---- tokens and moments
    need_latent = any(g in groups for g in ("tokens", "moments", "probes", "random"))
    need_generic = any(g in groups for g in ("moments", "probes", "random"))
    if "random" in groups and not random_directions:
        raise EmostatsError("group random needs random_directions >= 1 (--random-directions N)")
    if "random" in groups and random_directions > hidden - hid.m:
        raise EmostatsError(f"random_directions={random_directions} exceeds the {hidden - hid.m} noise dims "
                            f"(hidden - latent directions); ask for fewer directions or a larger hidden")
    rnd = _tokens.random_design(hid, int(random_directions), seed) if "random" in groups else None
    lat = None
    if need_latent:
        probe_act, acc, random_act = _tokens.simulate_tokens(hid, offsets, seed, lags, need_generic, dtype=dtype,
                                                             threads=threads, random=rnd)
        if acc is not None:
            empty = [L for L, n in zip(lags, acc.ln) if n < 2]
            if empty:
                raise EmostatsError(f"lag {empty[0]} has fewer than 2 valid pairs with turn_length="
                                    f"{tuple(turn_length)}; use smaller lags or longer turns")
            lat_latent = acc.latent()
            if "moments" in groups:
                lat = _tokens.to_hidden(hid, lat_latent, threads=threads)
    sd = None
    if n_features and any(g in groups for g in ("tokens", "features", "evaluations")):
        sd = _sae.make_sae_design(n_features, k, n_probes, hidden, n_rated, lags[0], seed)
    if "tokens" in groups:
        coords = {"conversation": ("token", conversation), "turn": ("token", turn),
                  "position": ("token", position), "probe": ("probe", names)}
        data = {"probe_act": (("token", "probe"), probe_act,
                              {"long_name": "probe activation (synthetic)"})}
        if n_features:
            index, value, fired, dropped = _sae.fill_slots(sd, offsets, k, seed)
            data["sae_index"] = (("token", "slot"), index, {"long_name": "active SAE feature ids (-1 = empty)"})
            data["sae_value"] = (("token", "slot"), value, {"long_name": "SAE feature activation"})
            truth_attrs.update(sae_fired=fired, sae_dropped=dropped)
        token_ds = xr.Dataset(data, coords=coords)
        tree["/tokens"] = token_ds
    if sd is not None:
        truth_vars.update(
            firing_rate=("feature", sd.pi), alpha=("feature", sd.alpha), beta=("feature", sd.beta),
            firing_persistence=("feature", sd.persistence), emotionality=("feature", sd.emotionality),
            value_scale=("feature", sd.value_scale))
        truth_attrs.update(sae_lag=sd.lag, sae_persist_coef=json.dumps(_sae.PERSIST),
                           sae_self_coef=json.dumps(_sae.SELF), sae_text_coef=json.dumps(_sae.TEXT),
                           sae_zipf=json.dumps(_sae.ZIPF))
    if "features" in groups:
        fvars = {"variance_explained": ("feature", sd.variance_explained, {"long_name": "variance explained"}),
                 "subspace_fraction": ("feature", sd.subspace_fraction,
                                       {"long_name": "fraction of decoder norm in the probe span"}),
                 "self_rating": ("feature", sd.self_rating, {"long_name": "self-evaluated emotionality (0-100)"}),
                 "text_rating": ("feature", sd.text_rating, {"long_name": "text-evaluated emotionality (0-100)"})}
        store = decoder if decoder is not None else n_features * hidden <= _sae.DECODER_MAX_ELEMENTS
        if store:
            fvars["decoder"] = (("feature", "hidden"), _sae.decoders(hid, sd, seed),
                                {"long_name": "decoder direction (unit norm)"})
        tree["/features"] = xr.Dataset(fvars, coords={"feature": np.arange(n_features, dtype=np.int64)})
    if "evaluations" in groups:
        cos, pref = _sae.cosines(hid, sd, seed)
        hits, associated, base, slope = _sae.mentions(cos, n_probes, seed)
        tree["/evaluations"] = xr.Dataset(
            {"mentions": (("rated_feature", "emotion"), hits, {"long_name": "transcript names the emotion"}),
             "cosine": (("rated_feature", "emotion"), cos, {"long_name": "cosine of decoder and probe"})},
            coords={"rated_feature": sd.rated.astype(np.int64), "emotion": names})
        truth_vars.update(mention_associated=("probe", associated), mention_base=("probe", base),
                          mention_slope=("probe", slope))
    # ---- probes
    vectors = hid.vectors
    var, slow, fast = hid.latent_weights(vectors)
    truth_vars.update(w_slow=("probe", slow / var), w_fast=("probe", fast / var), probe_variance=("probe", var))
    truth_vars["expected_r"] = (("lag", "probe"), hid.lag_r(vectors, np.asarray(lags)))
    residual, _, _ = _design.expected_residuals(hid, lags[0], seed=seed)
    truth_vars["residual_expected"] = ("probe", residual)
    trace = hid.trace()
    truth_vars["variance_explained_expected"] = ("probe", var / ((vectors ** 2).sum(1) * trace))
    def moments_ve(vecs):
        """v'Cv / (|v|^2 trace C) with C = Q (S - sigma2 I) Q' + sigma2 I of /moments, in the latent basis."""
        S = lat_latent["cov"]
        u = vecs @ hid.basis
        vcv = np.einsum("pk,kl,pl->p", u, S, u) - hid.sigma2 * (u * u).sum(1) + hid.sigma2 * (vecs ** 2).sum(1)
        return vcv / ((vecs ** 2).sum(1) * (np.trace(S) + hid.sigma2 * (hidden - hid.m)))

    if "random" in groups:
        tree["/random"] = xr.Dataset(
            {"random_act": (("token", "direction"), random_act, {"long_name": "activation of a random unit direction"}),
             "variance_explained": ("direction", moments_ve(rnd[0]), {"long_name": "variance explained (from /moments)"}),
             "vector": (("direction", "hidden"), rnd[0], {"long_name": "random unit direction"})},
            coords={"direction": np.arange(rnd[0].shape[0], dtype=np.int64)},
            attrs={"sampling": "uniform on the unit sphere of the hidden space"})
    if "probes" in groups:
        # v'Cv and trace(C) of the /moments covariance C = Q (S - sigma2 I) Q' + sigma2 I, in the latent basis
        ve = moments_ve(vectors)
        tree["/probes"] = xr.Dataset(
            {"vector": (("probe", "hidden"), vectors, {"long_name": "probe direction"}),
             "variance_explained": ("probe", ve, {"long_name": "variance explained (from /moments)"})},
            coords={"probe": names})
    if "moments" in groups:
        mom = {"mean": ("hidden", lat["mean"]), "cov": (("hidden", "hidden_b"), lat["cov"]),
               "n": ((), np.int64(lat["n"])), "lag_n": ("lag", lat["lag_n"].astype(np.int64))}
        for key in ("lag_mean_x", "lag_mean_y"):
            mom[key] = (("lag", "hidden"), lat[key])
        for key in ("lag_cxx", "lag_cyy", "lag_cxy"):
            mom[key] = (("lag", "hidden", "hidden_b"), lat[key])
        tree["/moments"] = xr.Dataset(mom, coords={"lag": np.asarray(lags, dtype=np.int64)},
                                      attrs={"centred": 1, "ddof": 0})
    truth_vars["basis"] = (("hidden", "component"), hid.basis)
    truth_vars.update(latent_variance=("component", hid.lam), latent_w_slow=("component", hid.w_slow),
                      latent_w_fast=("component", hid.w_fast), latent_bonus=("component", hid.bonus),
                      is_emotion=("component", np.arange(hid.m) < n_probes))
    # ---- steering
    if "steering" in groups:
        steered, baseline, st = _steering.make_steering(hid, names, n_steer_emotions, n_steer_samples,
                                                        n_baseline, n_offsets, seed, threads, dtype=dtype)
        tree["/steering"] = xr.Dataset(
            {"steered_act": (("emotion", "sample", "offset", "probe"), steered,
                             {"long_name": "probe activation after a steering pulse"}),
             "baseline_act": (("baseline_sample", "offset", "probe"), baseline,
                              {"long_name": "probe activation without steering"})},
            coords={"emotion": st["emotion"], "offset": np.arange(n_offsets, dtype=np.int64), "probe": names})
        truth_vars.update(steer_kind=("emotion", st["kind"]), steer_amplitude=("emotion", st["amplitude"]),
                          steer_tau=("emotion", st["tau"]), steer_shift=(("emotion", "offset"), st["shift"]),
                          steer_probe_sd=("emotion", st["probe_sd"]))
    truth_coords = {"probe": names, "lag": np.asarray(lags, dtype=np.int64)}
    if sd is not None:
        truth_coords["feature"] = np.arange(n_features, dtype=np.int64)
    if "steering" in groups:
        truth_coords["emotion"] = st["emotion"]
        truth_coords["offset"] = np.arange(n_offsets, dtype=np.int64)
    truth = xr.Dataset(truth_vars, coords=truth_coords, attrs=truth_attrs)
    summary = _summary(truth)
    root_attrs = {"emostats_format": 1, "model": "synthetic (no language model)", "layer": -1,
                  "source": "emostats.synth", "synthetic": 1, "seed": int(seed),
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "emostats_version": __version__, "parameters": json.dumps(params),
                  "truth_json": json.dumps(summary),
                  "description": "SYNTHETIC study with planted truth made by emostats.synth.make_study; "
                                 "not data from a language model"}
    if keep_bits is not None:
        for path, var in (("/tokens", "probe_act"), ("/tokens", "sae_value"), ("/features", "decoder"),
                          ("/steering", "steered_act"), ("/steering", "baseline_act"), ("/random", "random_act")):
            if path in tree and var in tree[path]:
                tree[path][var].values = bitround(tree[path][var].values, keep_bits)
    root = xr.DataTree(xr.Dataset(attrs=root_attrs))
    for path, ds in tree.items():
        root[path] = xr.DataTree(ds)
    return cf_label(root), truth  # CF long_name/units/Conventions, as io.save writes them

def bitround(values, keep_bits):
    """Round float values to ``keep_bits`` mantissa bits (round half to even), returning a new array.

    Examples
    --------
    >>> bitround(np.array([1.0 + 2.0 ** -10], dtype=np.float32), 8).tolist()
    [1.0]
    """
    values = np.asarray(values)
    total = {np.dtype(np.float32): (np.uint32, 23), np.dtype(np.float64): (np.uint64, 52)}[values.dtype]
    utype, mant = total
    keep_bits = int(keep_bits)
    if not 1 <= keep_bits < mant:
        raise EmostatsError(f"keep_bits={keep_bits} is invalid; expected 1..{mant - 1}")
    drop = utype(mant - keep_bits)
    bits = values.view(utype)
    half_minus_one = utype((1 << (mant - keep_bits - 1)) - 1)
    lsb = (bits >> drop) & utype(1)
    mask = ~utype((1 << (mant - keep_bits)) - 1)
    return ((bits + half_minus_one + lsb) & mask).view(values.dtype)

def _summary(truth):
    out = {k: (v if not isinstance(v, (np.generic,)) else v.item()) for k, v in truth.attrs.items()}
    out["probe"] = [str(p) for p in truth["probe"].values]
    for name in ("w_slow", "w_fast", "residual_expected"):
        out[name] = [round(float(x), 6) for x in truth[name].values]
    out["expected_r"] = {str(int(L)): [round(float(x), 6) for x in truth["expected_r"].sel(lag=L).values]
                         for L in truth["lag"].values}
    out["residual_expected_mean"] = float(truth["residual_expected"].mean())
    if "steer_kind" in truth:
        out["steering"] = {str(e): {"kind": str(kd), "amplitude": round(float(a), 6), "tau": round(float(t), 6)}
                           for e, kd, a, t in zip(truth["emotion"].values, truth["steer_kind"].values,
                                                  truth["steer_amplitude"].values, truth["steer_tau"].values)}
    if "mention_associated" in truth:
        out["mention_associated"] = [str(p) for p, a in zip(truth["probe"].values,
                                                            truth["mention_associated"].values) if a]
    return out
