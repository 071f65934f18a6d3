"""Calibration worlds: a null world and a world with planted effects (explicit hidden activations).

Both simulate the hidden activations themselves and go through
:func:`emostats.study_from_activations`, so their studies carry
``/conv_moments`` like any study made from raw activations.

Model (latent coordinates ``z`` in a random orthonormal basis ``Q``)::

    h_t = mu + Q diag(sqrt(lam)) (sqrt(beta) b_s + sqrt(1 - beta) e_t)

per segment ``s`` (one turn): ``b_s ~ N(0, I)`` is the turn's level, constant
over the turn; ``e_t`` is a unit-variance AR(1) per coordinate with
coefficient ``phi``, started from its stationary law at every turn. For a
direction ``v`` with ``u = diag(sqrt(lam)) Q' v`` the population lag-L
correlation of ``v . h`` within a turn is ``sum u^2 (beta + (1 - beta)
phi^L) / sum u^2`` and the within-turn one ``sum u^2 (1 - beta) phi^L /
sum u^2 (1 - beta)`` for long turns; with each turn centred on its own means
(as the estimator does) turns of finite length give a smaller value, computed
exactly by :func:`world_truth`.

- **null**: ``beta`` and ``phi`` equal in every coordinate, so *every*
  direction has the same persistence whatever its variance: probes have no
  special persistence (population residual 0) and no PC structure (every PC
  equally persistent). Defaults give the shipped example's turn-level
  heterogeneity: pooled r about 0.22 of which about 90% is between turns.
  The probes share a common direction (as emotion probes do), so their
  sampling errors are correlated: tests that treat probes or tokens as
  independent over-reject here.
- **planted**: ``n_planted`` coordinates in the middle of the variance
  spectrum (which the probes load on) have a slower within-turn AR
  (``phi_planted``): within-turn excess persistence of the probes over
  variance-matched directions (a residual of mostly +0.05 to +0.2 at the
  defaults; a few designs have less).

:func:`world_truth` gives the value each headline estimator targets on a
study of the world (evaluated on the study's own stored directions and turn
lengths): the population value, or for within-turn numbers the exact limit
over many conversations with the study's turn lengths.
"""

import numpy as np
import xarray as xr

from ..errors import EmostatsError

__all__ = ["make_world", "world_truth", "WORLDS"]

WORLDS = ("null", "planted")


def _rng(seed, part):
    return np.random.default_rng(np.random.SeedSequence([int(seed), 1414, part]))


def world_design(kind, hidden, n_probes, lag, seed, beta=0.2, phi_l=0.03, n_planted=3, phi_planted_l=0.35,
                 probe_spread=0.7):
    """The planted parameters of a world (dict of arrays)."""
    if kind not in WORLDS:
        raise EmostatsError(f"world must be one of {', '.join(WORLDS)}, got {kind!r}")
    rng = _rng(seed, 0)
    Q, r = np.linalg.qr(rng.standard_normal((hidden, hidden)))
    Q *= np.sign(np.diag(r))
    lam = 10.0 ** np.linspace(0.5, -0.5, hidden)  # a variance spectrum, so variance explained varies
    phi = np.full(hidden, phi_l ** (1.0 / lag))
    beta_v = np.full(hidden, float(beta))
    loadings = rng.standard_normal((n_probes, hidden))
    common = rng.standard_normal(hidden)
    if kind == "planted":
        # planted coordinates in the middle of the variance spectrum: the directions of the same variance
        # explained (top-k candidates of large k, near-isotropic) carry little of the planted persistence,
        # so the probes' excess over them is planted in every design (not only in lucky ones)
        planted = (hidden - n_planted) // 2 + np.arange(n_planted)
        other = np.setdiff1d(np.arange(hidden), planted)
        phi[planted] = phi_planted_l ** (1.0 / lag)
        loadings[:, other] *= 0.25  # probes load mostly on the planted coordinates
        common[other] *= 0.25
    z = common[None, :] + probe_spread * loadings
    vectors = z @ Q.T  # probe i = sum_d z_id Q[:, d]
    mu = rng.standard_normal(hidden)
    return {"Q": Q, "lam": lam, "phi": phi, "beta": beta_v, "vectors": vectors, "mu": mu, "lag": int(lag),
            "kind": kind}


def make_world(kind="null", n_conversations=12, turns=3, turn_length=100, hidden=16, n_probes=6, lag=10,
               seed=0, n_random=50, n_candidates=200, as_study=True, **design):
    """A study (DataTree) of the null or planted world, and its design.

    Parameters
    ----------
    kind : {"null", "planted"}
    n_conversations, turns, turn_length : int
        Conversations, turns per conversation, tokens per turn.
    hidden, n_probes, lag : int
    seed : int
    n_random, n_candidates : int
        Null directions stored in ``/conv_moments``.
    as_study : bool
        False returns the hidden activations (DataArray) instead of a study.
    **design
        ``beta`` (turn-level share of variance, default 0.2), ``phi_l`` (within-turn
        AR correlation at the lag, 0.03), ``n_planted``, ``phi_planted_l`` (0.35).

    Returns
    -------
    (xarray.DataTree or xarray.DataArray, dict)

    Examples
    --------
    >>> tree, design = make_world("null", n_conversations=4, seed=1)
    >>> tree["tokens"]["probe_act"].shape, sorted(tree.children)[0]
    ((1200, 6), 'conv_moments')
    """
    d = world_design(kind, hidden, n_probes, lag, seed, **design)
    n_seg = n_conversations * turns
    rng = _rng(seed, 1)
    b = rng.standard_normal((n_seg, hidden))
    z = rng.standard_normal((n_seg, turn_length, hidden))
    e = np.empty_like(z)
    e[:, 0] = z[:, 0]
    phi = d["phi"]
    innov = np.sqrt(1.0 - phi ** 2)
    for t in range(1, turn_length):
        e[:, t] = phi * e[:, t - 1] + innov * z[:, t]
    lat = np.sqrt(d["beta"]) * b[:, None, :] + np.sqrt(1.0 - d["beta"]) * e
    lat *= np.sqrt(d["lam"])
    h = d["mu"] + lat.reshape(-1, hidden) @ d["Q"].T
    conv = np.repeat(np.arange(n_conversations), turns * turn_length)
    turn = np.tile(np.repeat(np.arange(turns), turn_length), n_conversations)
    da = xr.DataArray(h, dims=("token", "hidden"), coords={"conversation": ("token", conv), "turn": ("token", turn)})
    if not as_study:
        return da, d
    from ..inference import study_from_activations
    from ..inference._merge import single_threaded_blas

    # small products: one BLAS thread is many times faster on shared cores (the results are the same)
    with single_threaded_blas():
        tree = study_from_activations(da, d["vectors"], lags=[lag], n_random=n_random, n_candidates=n_candidates,
                                      seed=seed, attrs={"synthetic": 1, "world": kind, "seed": int(seed),
                                                        "description": f"SYNTHETIC {kind} world of emostats.synth"})
    return tree, d


def _within_sums(phi, lengths, lag):
    """Expected within-turn sums (E Wxy, E Wxx) per coordinate of a unit AR(1) with coefficients ``phi``.

    Over the turns of ``lengths`` (each centred on its own pair means, as the
    estimator does): a turn of length T has n = T - L pairs and, with
    gamma(k) = phi^|k| and S(m) = sum_{i,j=1..n} gamma(m + j - i)
    = sum_{|k|<n} (n - |k|) phi^|m + k|::

        E Wxy = n phi^L - S(L) / n,    E Wxx = E Wyy = n - S(0) / n.

    Centring on each turn's own means takes the turn's level out exactly and
    biases the within-turn r down by about var(turn mean) (Nickell 1981): at
    100 tokens and phi^L = 0.03 at L = 10 the expected within-turn r is
    about -0.04, not 0.03, so the estimator's target is this ratio, not
    phi^L.
    """
    phi = np.asarray(phi, dtype=np.float64)
    exy = np.zeros(phi.shape)
    exx = np.zeros(phi.shape)
    for T in np.asarray(lengths, dtype=np.int64):
        n = int(T) - int(lag)
        if n < 1:
            continue
        k = np.arange(-(n - 1), n)
        w = (n - np.abs(k)).astype(np.float64)
        s0 = (w[None, :] * phi[:, None] ** np.abs(k)[None, :]).sum(1)
        sl = (w[None, :] * phi[:, None] ** np.abs(lag + k)[None, :]).sum(1)
        exy += n * phi ** lag - sl / n
        exx += n - s0 / n
    return exy, exx


def _population(d, vectors, lengths=None):
    """Population (pooled r, within r, variance explained, within part) of each row of ``vectors``.

    The pooled r is the limit over many turns (it does not depend on the turn
    lengths); the within-turn r and the within part of the pooled r are the
    limits over many turns *of the given lengths* (``lengths``; without it the
    limit of long turns, ``phi^L``).
    """
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    u2 = ((v @ d["Q"]) ** 2) * d["lam"]
    L = d["lag"]
    var = u2.sum(1)
    r = (u2 * (d["beta"] + (1 - d["beta"]) * d["phi"] ** L)).sum(1) / var
    ve = var / ((v * v).sum(1) * d["lam"].sum())
    a = u2 * (1 - d["beta"])
    if lengths is None:
        rw = (a * d["phi"] ** L).sum(1) / a.sum(1)
        part = (a * d["phi"] ** L).sum(1) / var
    else:
        exy, exx = _within_sums(d["phi"], lengths, L)
        n_pairs = float(np.maximum(np.asarray(lengths) - L, 0).sum())
        rw = (a * exy).sum(1) / (a * exx).sum(1)
        part = (a * exy).sum(1) / n_pairs / var
    return r, rw, ve, part


def world_truth(tree, design, n_match=20):
    """The values the headline estimators target on ``tree`` (a study of the world ``design``).

    - ``probe_persistence``, ``random_persistence``, ``probe_minus_random``,
      ``residual_mean``: population values (limits over many conversations);
    - ``probe_within``, ``random_within``, ``residual_within_mean``,
      ``probe_between_share``: limits over many conversations whose turns have
      the study's turn lengths. Centring each turn on its own means biases the
      within-turn r down by about the variance of a turn's mean (see
      :func:`_within_sums`), a bias that does not shrink with more
      conversations, only with longer turns; the limit is computed exactly.

    The null directions are the study's own stored ones; matching uses their
    population variance explained, as the estimator uses the sample one.

    Examples
    --------
    >>> tree, design = make_world("null", n_conversations=4, seed=2)
    >>> truth = world_truth(tree, design)
    >>> abs(truth["residual_mean"]) < 1e-12, round(truth["probe_persistence"], 4)
    (True, 0.224)
    """
    from ..inference.headlines import _nearest
    from ..segments import segments_of

    lengths = np.diff(segments_of(tree["tokens"]["probe_act"]))
    r, rw, ve, part = _population(design, design["vectors"], lengths)
    cm = tree["conv_moments"].to_dataset(inherit=False)
    pop = np.asarray(cm["population"].values).astype(str)
    cr, cw, cve, _ = _population(design, cm["vector"].values.astype(np.float64), lengths)
    cand, uni = pop == "candidate", pop == "uniform"
    idx = _nearest(ve, cve[cand], n_match)
    resid = r - np.median(cr[cand][idx], axis=1)
    resid_w = rw - np.median(cw[cand][idx], axis=1)
    return {"probe_persistence": float(r.mean()), "probe_within": float(rw.mean()),
            "probe_between_share": float(1.0 - part.mean() / r.mean()),
            "random_persistence": float(cr[uni].mean()), "random_within": float(cw[uni].mean()),
            "probe_minus_random": float(r.mean() - cr[uni].mean()),
            "residual_mean": float(resid.mean()), "residual_within_mean": float(resid_w.mean())}
