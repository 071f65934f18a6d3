r"""Synthetic studies with planted, documented truth (``emostats.synth``).

:func:`make_study` returns a study tree in the format of SPEC.md section 1 and
a ``truth`` Dataset holding every planted quantity; :func:`write_study` saves
one atomically. A small synthetic study (12,000 tokens, labelled synthetic in
its attributes) is made by::

    emostats synth -o synthetic_example.nc --seed 2026 --tokens 12000 \
        --probes 171 --features 1500 --k 16 --hidden 256 --steer-emotions 12 \
        --steer-samples 6 --baseline 6 --offsets 101 --rated 250 --keep-bits 8

(the same arguments as :data:`EXAMPLE_ARGS`). This synthetic study was the
package's example until the real-model study of ``extract/`` replaced it; the
command still makes the same small synthetic study.

(``--keep-bits 8`` rounds stored activations to 8 mantissa bits, relative
error <= 2**-9, so that the file stays small; moments are exact.)

Segments
--------
Conversations are made of turns; a segment is one (conversation, turn). Turn
lengths are uniform integers in ``turn_length`` (the last turn is cut so that
the lengths add up to ``n_tokens``); without ``n_conversations`` a
conversation has 1 + Poisson(4) turns. ``position`` counts 0, 1, 2, ... inside
each segment; ``conversation`` and ``turn`` count from 0.

Hidden space and probes
-----------------------
The hidden activation at token t is::

    h_t = mu + Q y_t + e_t,

``Q`` (hidden x m) orthonormal, ``e_t`` noise with covariance
``sigma2 (I - Q Q')`` (isotropic in the orthogonal complement of ``Q``). Each
latent series ``y_j`` (independent over j) is, within a segment,::

    y_j(t) = sqrt(lam_j) * (sqrt(ws_j) a_j(t) + sqrt(wf_j) b_j(t) + sqrt(1 - ws_j - wf_j) eps_j(t))
    a_j(t) = phi_slow a_j(t-1) + sqrt(1 - phi_slow^2) z,   b_j likewise with phi_fast,

with ``a``, ``b``, ``eps`` unit-variance Gaussian, restarted from their
stationary N(0, 1) at the first token of every segment. The noise ``e_t`` has
the same kind of dynamics with shares ``ws_n = 0.15``, ``wf_n = 0.25``. The
first ``n_probes`` columns of ``Q`` (the *emotion directions*) span the
probes: probe ``i`` has vector ``v_i = sum_k C[i, k] Q[:, k]`` and
``probe_act[t, i] = v_i . h_t`` exactly (``v_i`` has no noise component).
Hence for any direction ``v`` with ``u = Q' v`` and noise variance
``n_v = sigma2 (|v|^2 - |u|^2)``, the population lag correlation (L >= 1) is::

    r_v(L) = w_slow(v) phi_slow^L + w_fast(v) phi_fast^L,
    w_slow(v) = (sum_j lam_j ws_j u_j^2 + ws_n n_v) / var(v),   w_fast likewise with wf,
    var(v) = sum_j lam_j u_j^2 + n_v,

which :func:`expected_lag_r` (probes: ``truth.w_slow``, ``truth.w_fast``) and
:func:`expected_direction_r` (any vectors) evaluate. Planted design
(``_design.make_hidden``): a log-variance ``x_j`` gives ``lam_j = 10^(2 x_j - 1)``.
There are ``m_g = min(hidden - p - max(1, hidden // 8), max(8, p // 8, 64))``
generic directions with ``x`` evenly spaced in [0.3, 1], ``ws = 0.05 + 0.30 x``,
``wf = 0.25``, and ``p = n_probes`` emotion directions with ``x ~ U(0, 0.35)``,
``wf = 0.20`` and ``ws = 0.05 + 0.30 x + bonus``,
``bonus = 0.25 + 0.20 x / 0.35``: the planted gap. High-variance directions
are more persistent in general (generic curve; low-variance noise dims are
the least persistent), and emotion directions, though of modest variance, are
more persistent than directions of the same variance explained, more so for
the higher-variance emotion directions (so leading emotion PCs have larger
residuals). ``sigma2 = 0.9 min(lam)``; ``C = diag(s) (I + 0.5 G / sqrt(p))``
with ``G`` standard normal and ``s = exp(0.3 N(0, 1))``; ``mu ~ N(0, 0.25 I)``;
``phi_slow = 0.995``, ``phi_fast = 0.8``. At paper scale (hidden 7168, 171
probes) probes have mean r(100) ~ 0.29, random unit vectors ~ 0.12 and the
expected variance-matched residual is ~ +0.12 for every probe; ``hidden``
must exceed ``n_probes`` by about 15% and the gap grows with ``hidden``.

``/moments`` holds the moments of ``h`` over all tokens (``mean``, ``cov``,
``n``) and over the valid lag pairs (x = token t, y = t + L in the same
segment): ``lag_n``, ``lag_mean_x``, ``lag_mean_y``, ``lag_cxx``, ``lag_cyy``,
``lag_cxy``. They are centred and divided by the number of tokens (pairs),
i.e. ddof = 0 (group attributes ``centred = 1``, ``ddof = 0``). The signal
part ``mu + Q y`` enters as *exact sample moments* of the simulated series
(computed from the latent sample moments as ``Q S Q'``, so no tokens x hidden
array is ever made); the noise ``e_t`` enters with its expectation:
``sigma2 (I - QQ')`` in ``cov``, ``lag_cxx`` and ``lag_cyy``,
``sigma2 rho_n(L) (I - QQ')`` in ``lag_cxy``, zero in the means. So for a
probe vector ``v`` the moment formula ``r = v'Cxy v / sqrt(v'Cxx v v'Cyy v)``
equals the pooled Pearson r of ``probe_act`` over valid pairs exactly (up to
the storage precision of ``probe_act``); for other directions it is the sample
r of the signal part with the noise part at its expectation. ``/probes``
``variance_explained`` is ``v'Cv / (|v|^2 trace C)`` from these moments.
``truth.residual_expected`` is the expected variance-matched residual (median
of the 20 nearest in variance explained among 5,420 directions uniform on the
top-k eigenspaces of the *population* covariance, 20 values of k geometric in
[1, hidden]). ``/random`` (with ``random_directions=N``) holds activations of
N unit vectors uniform on the sphere: signal part exact, noise part simulated
with the right cross-covariance and dynamics (so its sample r differs from the
moment r by sampling error only), plus ``variance_explained`` from
``/moments`` and the ``vector`` itself.

SAE features
------------
Feature f is a two-state Markov chain within each segment, P(off->on) =
alpha_f, P(on->off) = beta_f, restarted from its stationary distribution
(P(on) = pi_f = alpha_f / (alpha_f + beta_f)) at every segment start, so for
t and t + L in one segment::

    P(fire t+L | fire t) - P(fire t+L | not fire t) = (1 - alpha_f - beta_f)^L.

Chains are simulated by run lengths (geometric waits) straight into the top-k
slots; a token whose ``k`` slots are full drops further firings (features are
written in a seeded random order; ``truth.attrs['sae_dropped']`` counts them;
with sum(pi) = k/2 drops are rare). ``pi`` is Zipf-like: proportional to
``(rank + 10)^-1`` over a random ranking, capped at 0.5, scaled so that
``sum(pi) = k/2``. Values are ``value_scale_f * U(0.5, 1.5)`` with
``value_scale_f = exp(0.5 N(0, 1))``. Planted table (``_sae.py``)::

    variance_explained_f  proportional to pi_f value_scale_f^2, summing to 0.6
    subspace_fraction_f   sqrt(sigmoid(logit(p / hidden) + N(0, 1)))
    P_f = (1 - alpha_f - beta_f)^L0 = 0.8 sigmoid(-1 + 0.8 zv + 0.6 zs + 0.5 e + 0.5 N(0, 1))

with ``L0 = lags[0]``, ``zv`` = z-score of log variance explained, ``zs`` =
z-score of logit(subspace_fraction^2), ``e`` = latent emotionality ~ N(0, 1)
(``truth.emotionality``): persistence rises with variance explained and,
after controlling for it, with subspace fraction and emotionality. The
``n_rated`` features of highest ``pi`` are rated (others NaN)::

    self_rating = round(100 sigmoid( 0.3 e + 0.5 zs - 0.5 zv + 0.7 N))
    text_rating = round(100 sigmoid(-0.5 e + 0.3 zs + 0.8 N))

so self rating correlates positively with residual persistence and subspace
fraction and negatively with variance explained, text rating weakly
negatively with residual persistence, and the two ratings about zero with
each other. Decoders are unit vectors ``sf Q_e a + sqrt(1 - sf^2) b`` with
``a`` a unit vector in the emotion directions (``gamma e_k + N(0, I)/sqrt(p)``,
``gamma ~ U(0, 2)``) and ``b`` a unit vector orthogonal to them, so their
subspace fraction is exactly ``subspace_fraction``. ``decoder`` is stored when
``n_features * hidden <= 50,000,000`` (200 MB as float32) unless
``decoder=True/False`` says otherwise.

Steering and evaluations
------------------------
``/steering``: each sample is a fresh segment of ``n_offsets`` tokens of the
same latent process; a steered sample of emotion e adds
``steer_amplitude_e * sd_e * exp(-offset / steer_tau_e)`` to e's own probe
(``sd_e`` its population sd), nothing to other probes. 62% of steered
emotions are elevated, 14% suppressed, the rest null; |amplitude| ~ U(1.5, 4),
tau log-uniform in [3, 60] tokens. ``/evaluations``: ``cosine`` is the exact
cosine of each rated feature's decoder with each probe vector;
``P(mention) = sigmoid(logit(base_e) + slope_e z_e(cosine))`` with slope 1.5
for a random 35% of emotions (``truth.mention_associated``) and 0 otherwise,
base rates log-uniform in [0.5%, 12%].

Calibration worlds
------------------
:func:`make_world` simulates the hidden activations of a *null* world (every
direction equally persistent, turn-level heterogeneity as in the shipped
example) or a *planted* one (probes with excess within-turn persistence) and
builds the study with :func:`emostats.study_from_activations`, so it carries
``/conv_moments``; :func:`world_truth` gives the population values of the
headline numbers (formulas in :mod:`emostats.synth._worlds`). They calibrate
the conversation-level inference of :mod:`emostats.inference`.

Randomness: every part draws from its own ``numpy.random.SFC64`` generator
seeded by ``numpy.random.SeedSequence([seed, part, block])`` (SAE chains from
a splitmix64 stream keyed by feature), so the same seed gives the same bits for
any thread count, and a subset of ``groups`` gives the same data in the groups
it makes.
"""

import numpy as np
import xarray as xr

from ._study import GROUPS, _make_study, _single_threaded_blas, bitround, probe_names
from ._scale import sufficient_study
from ._worlds import WORLDS, make_world, world_truth

__all__ = ["make_study", "write_study", "expected_lag_r", "expected_direction_r",
           "expected_firing_persistence", "probe_names", "bitround", "GROUPS", "EXAMPLE_ARGS",
           "make_world", "world_truth", "WORLDS", "sufficient_study"]

#: ``emostats synth`` arguments (after ``-o PATH``) that made ``emostats/data/example_study.nc``
EXAMPLE_ARGS = ("--seed", "2026", "--tokens", "12000", "--probes", "171", "--features", "1500", "--k", "16",
                "--hidden", "256", "--steer-emotions", "12", "--steer-samples", "6", "--baseline", "6",
                "--offsets", "101", "--rated", "250", "--keep-bits", "8")


def make_study(n_tokens=20_000, n_probes=171, n_features=2_000, k=16, hidden=256, n_conversations=None,
               turn_length=(50, 1500), n_rated=None, n_steer_emotions=None, n_steer_samples=16,
               n_baseline=16, n_offsets=201, lags=(100,), seed=0, groups=None, *, decoder=None,
               random_directions=0, phi_slow=0.995, phi_fast=0.8, dtype="float32", keep_bits=None, threads=None):
    """A synthetic study with planted truth (see the module docstring for every formula).

    Parameters
    ----------
    n_tokens, n_probes, n_features, k, hidden : int
        Sizes: tokens, probes (first names of the paper's list), SAE features,
        top-k slots, hidden dimension (must leave room beyond the probes:
        about ``hidden >= 1.15 * n_probes + 2``).
    n_conversations : int, optional
        Split the turns into this many conversations (default 1 + Poisson(4) turns each).
    turn_length : (int, int)
        Inclusive range of turn lengths in tokens.
    n_rated : int, optional
        Rated features (highest firing rate); default ``min(1000, 15% of n_features)``.
    n_steer_emotions : int, optional
        Steered emotions (a seeded subset of the probes); default ``min(24, n_probes)``.
    n_steer_samples, n_baseline, n_offsets : int
        Steered samples per emotion, baseline samples, tokens after the pulse.
    lags : tuple of int
        Lags of ``/moments``; ``lags[0]`` is the lag at which SAE persistence is planted.
    seed : int
    groups : iterable of str, optional
        Groups to make (default all but ``random`` unless ``random_directions``).
    decoder : bool, optional
        Store ``/features`` ``decoder``; default when ``n_features * hidden <= 5e7``.
    random_directions : int
        Number of random unit directions in ``/random`` (0 = no group).
    phi_slow, phi_fast : float
        AR(1) coefficients of the slow and fast parts.
    dtype : str
        dtype of activations (float32 or float64).
    keep_bits : int, optional
        Round stored activations, SAE values and decoders to this many mantissa
        bits (round to nearest even, as NetCDF's BitRound) so that they compress
        well; relative error at most ``2**-(keep_bits + 1)``. None keeps every bit.
        Moments and truth are computed before rounding.
    threads : int, optional
        Numba threads (the data do not depend on it).

    Returns
    -------
    tree : xarray.DataTree
    truth : xarray.Dataset

    Notes
    -----
    BLAS runs single-threaded inside (via threadpoolctl when installed): the
    Gram products overlap with random-number threads, and multi-threaded
    OpenBLAS slows down many-fold when the cores are shared with other work.

    Examples
    --------
    >>> tree, truth = make_study(n_tokens=3000, n_probes=8, n_features=200, k=8, hidden=32, seed=1)
    >>> tree["tokens"]["probe_act"].shape
    (3000, 8)
    >>> bool(truth.attrs["phi_slow"] > truth.attrs["phi_fast"])
    True
    """
    with _single_threaded_blas():
        return _make_study(n_tokens, n_probes, n_features, k, hidden, n_conversations, turn_length, n_rated,
                           n_steer_emotions, n_steer_samples, n_baseline, n_offsets, lags, seed, groups,
                           decoder, random_directions, phi_slow, phi_fast, dtype, keep_bits, threads)

def write_study(path, force=False, truth_path=None, **kwargs):
    """Make a study with :func:`make_study` and save it atomically; returns the truth Dataset.

    ``truth_path`` also saves the full truth Dataset there (NetCDF, atomic);
    the study's root attribute ``truth_json`` always holds its summary.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "s.nc"
    >>> truth = write_study(out, n_tokens=2000, n_probes=4, n_features=50, k=4, hidden=16)
    >>> out.exists()
    True
    """
    from pathlib import Path

    from .._atomic import check_output
    from ..errors import EmostatsError
    from ..io import save

    check_output(path, force=force)
    if truth_path is not None:
        if Path(truth_path).resolve() == Path(path).resolve():
            raise EmostatsError(f"truth path {truth_path} is the study's output path; give the truth "
                                f"its own file (the second write would replace the study)")
        check_output(truth_path, force=force)
    tree, truth = make_study(**kwargs)
    save(tree, path, force=force)
    if truth_path is not None:
        save(xr.DataTree(truth), truth_path, force=force)
    return truth


def expected_lag_r(truth, lag):
    """Population lag-``lag`` correlation of every probe: w_slow phi_slow^L + w_fast phi_fast^L.

    Examples
    --------
    >>> _, truth = make_study(n_tokens=2000, n_probes=4, n_features=0, k=4, hidden=16,
    ...                       groups=("tokens",))
    >>> expected_lag_r(truth, 0).values.tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    lag = int(lag)
    ws, wf = truth["w_slow"], truth["w_fast"]
    if lag == 0:
        r = xr.ones_like(ws)
    else:
        r = ws * truth.attrs["phi_slow"] ** lag + wf * truth.attrs["phi_fast"] ** lag
    return r.rename("expected_r").assign_attrs(long_name=f"expected lag-{lag} correlation", lag=lag)


def expected_direction_r(truth, vectors, lag):
    """Population lag-``lag`` correlation of arbitrary hidden-space directions (rows of ``vectors``)."""
    vectors = np.atleast_2d(np.asarray(getattr(vectors, "values", vectors), dtype=np.float64))
    Q = truth["basis"].values
    u2 = (vectors @ Q) ** 2
    lam = truth["latent_variance"].values
    var = u2 @ lam + truth.attrs["sigma2"] * np.maximum((vectors ** 2).sum(1) - u2.sum(1), 0.0)
    ws = (u2 @ (lam * truth["latent_w_slow"].values)) / var
    wf = (u2 @ (lam * truth["latent_w_fast"].values)) / var
    lag = int(lag)
    if lag == 0:
        return np.ones_like(var)
    return ws * truth.attrs["phi_slow"] ** lag + wf * truth.attrs["phi_fast"] ** lag


def expected_firing_persistence(truth, lag):
    """Planted P(fire t+L | fire t) - P(fire t+L | not fire t) = (1 - alpha - beta)^L per feature."""
    r = (1.0 - truth["alpha"] - truth["beta"]) ** int(lag)
    return r.rename("expected_firing_persistence").assign_attrs(lag=int(lag))
