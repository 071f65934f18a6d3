"""Planted parameters of a synthetic study: segments, the hidden space, the probes.

Everything here is population-level design (no token data): the latent
directions and their dynamics, the probe vectors, and the closed-form lag
correlation of any direction. :mod:`emostats.synth._tokens` simulates from it.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import EmostatsError

# one independent random stream per part of the study, so that asking for a
# subset of groups gives the same data in the groups that are made
STREAM = {"segments": 1, "hidden": 2, "emotion": 3, "generic": 4, "sae": 5, "features": 6,
          "steer": 7, "steer_latent": 8, "evaluations": 9, "decoder_a": 10, "decoder_b": 11,
          "truth": 12, "random": 13}


def rng_for(seed, part, *more):
    """The ``numpy.random.Generator`` of one part (and sub-part) of a study."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence([int(seed), STREAM[part], *map(int, more)])))


def make_segments(n_tokens, turn_length, n_conversations, seed):
    """Turn lengths and conversation/turn/position coordinates.

    Turn lengths are uniform integers in ``turn_length`` (inclusive); the last
    turn is cut so the lengths sum to ``n_tokens``. Without ``n_conversations``
    each conversation has 1 + Poisson(4) turns; with it, the turns are split
    into that many consecutive, nearly equal groups.
    """
    lo, hi = int(turn_length[0]), int(turn_length[1])
    rng = rng_for(seed, "segments")
    lengths = []
    total = 0
    while total < n_tokens:
        draw = rng.integers(lo, hi + 1, size=max(16, 2 * (n_tokens - total) // max(1, (lo + hi) // 2)))
        for length in draw:
            length = int(min(length, n_tokens - total))
            lengths.append(length)
            total += length
            if total >= n_tokens:
                break
    lengths = np.asarray(lengths, dtype=np.int64)
    n_seg = lengths.size
    if n_conversations is None:
        sizes = []
        while sum(sizes) < n_seg:
            sizes.append(int(1 + rng.poisson(4)))
        sizes[-1] -= sum(sizes) - n_seg
    else:
        n_conversations = int(n_conversations)
        if n_conversations > n_seg:
            raise EmostatsError(f"n_conversations={n_conversations} exceeds the {n_seg} turns that "
                                f"{n_tokens} tokens make with turn_length={tuple(turn_length)}; "
                                f"ask for fewer conversations or shorter turns")
        sizes = np.diff(np.linspace(0, n_seg, n_conversations + 1).round().astype(int)).tolist()
    conv_of_seg = np.repeat(np.arange(len(sizes)), sizes)
    turn_of_seg = np.concatenate([np.arange(s) for s in sizes])
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    conversation = np.repeat(conv_of_seg, lengths).astype(np.int32)
    turn = np.repeat(turn_of_seg, lengths).astype(np.int32)
    position = (np.arange(n_tokens) - np.repeat(offsets[:-1], lengths)).astype(np.int32)
    return offsets, conversation, turn, position


@dataclass
class Hidden:
    """The planted hidden space (see the module docstring of :mod:`emostats.synth`)."""

    hidden: int
    n_probes: int
    lam: np.ndarray        # (m,) variance of each latent direction
    w_slow: np.ndarray     # (m,) fraction of that variance in the slow AR(1)
    w_fast: np.ndarray     # (m,) fraction in the fast AR(1); the rest is white noise
    bonus: np.ndarray      # (m,) slow-weight bonus of the emotion directions over the generic curve
    sigma2: float          # isotropic noise variance per dim of the orthogonal complement
    noise_w_slow: float    # slow and fast shares of the noise (population-level dynamics)
    noise_w_fast: float
    basis: np.ndarray      # (hidden, m) orthonormal latent directions; the first n_probes span the probes
    mean: np.ndarray       # (hidden,) mean activation
    coef: np.ndarray       # (n_probes, n_probes) probe i = sum_k coef[i, k] * basis[:, k]
    phi_slow: float
    phi_fast: float

    @property
    def m(self):
        return self.lam.shape[0]

    @property
    def vectors(self):
        """Probe vectors (n_probes, hidden)."""
        return self.coef @ self.basis[:, :self.n_probes].T

    def c_parts(self, cols):
        """Standard deviations (slow, fast, white) of the latent series ``cols``."""
        lam, ws, wf = self.lam[cols], self.w_slow[cols], self.w_fast[cols]
        return np.sqrt(lam * ws), np.sqrt(lam * wf), np.sqrt(lam * np.clip(1.0 - ws - wf, 0.0, None))

    def trace(self):
        """Population trace of the hidden covariance."""
        return float(self.lam.sum() + self.sigma2 * (self.hidden - self.m))

    def noise_rho(self, lag):
        """Population lag correlation of the noise (1 at lag 0)."""
        return 1.0 if lag == 0 else self.noise_w_slow * self.phi_slow ** lag + self.noise_w_fast * self.phi_fast ** lag

    def latent_weights(self, vectors):
        """Population (variance, slow variance, fast variance) of each row of ``vectors``."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        u = vectors @ self.basis
        u2 = u * u
        noise = self.sigma2 * np.maximum((vectors * vectors).sum(1) - u2.sum(1), 0.0)
        var = u2 @ self.lam + noise
        return (var, u2 @ (self.lam * self.w_slow) + self.noise_w_slow * noise,
                u2 @ (self.lam * self.w_fast) + self.noise_w_fast * noise)

    def lag_r(self, vectors, lag):
        """Population lag-``lag`` correlation of each direction (rows of ``vectors``)."""
        var, slow, fast = self.latent_weights(vectors)
        lag = np.asarray(lag)
        if lag.ndim == 0:
            return _r_from_weights(slow / var, fast / var, lag, self.phi_slow, self.phi_fast)
        return np.stack([_r_from_weights(slow / var, fast / var, L, self.phi_slow, self.phi_fast) for L in lag])


def _r_from_weights(w_slow, w_fast, lag, phi_slow, phi_fast):
    if lag == 0:
        return np.ones_like(w_slow)
    return w_slow * phi_slow ** lag + w_fast * phi_fast ** lag


def n_generic(hidden, n_probes):
    """Number of generic (non-emotion) latent directions, or a one-line error."""
    room = hidden - n_probes - max(1, hidden // 8)
    if room < 1:
        need = next(h for h in range(n_probes + 2, 10 * n_probes + 64) if h - n_probes - max(1, h // 8) >= 1)
        raise EmostatsError(f"hidden={hidden} is too small for {n_probes} probes: the probe vectors must span a "
                            f"proper subspace; use hidden >= {need} (e.g. --hidden {max(need, 256)}) or fewer probes")
    return int(min(room, max(8, n_probes // 8, 64)))


#: ranges of the log-variance x (lam = 10**(2x - 1)) of emotion and generic directions
X_EMOTION = (0.0, 0.35)
X_GENERIC = (0.3, 1.0)
#: generic slow weight GENERIC[0] + GENERIC[1] * x; fast weights of generic and emotion directions
GENERIC = (0.05, 0.30)
W_FAST = {"generic": 0.25, "emotion": 0.20}
#: emotion slow-weight bonus: BONUS[0] + BONUS[1] * (x - min) / (max - min)
BONUS = (0.25, 0.20)
#: slow and fast shares of the isotropic noise; its variance is NOISE_FLOOR * min(lam)
NOISE = {"w_slow": 0.15, "w_fast": 0.25}
NOISE_FLOOR = 0.9


def make_hidden(hidden, n_probes, seed, phi_slow=0.995, phi_fast=0.8):
    """Draw the planted hidden space.

    Latent direction variances are ``lam = 10**(2x - 1)`` for a "log-variance"
    ``x``: generic directions take ``x`` on an even grid over ``X_GENERIC``,
    emotion directions (those that span the probes) ``x`` uniform in
    ``X_EMOTION`` (lower variance than the top generic directions). Slow
    weights follow one generic curve ``GENERIC[0] + GENERIC[1] x`` plus, for
    emotion directions only, the bonus ``BONUS[0] + BONUS[1] (x - min) / span``
    (the planted excess persistence of emotion probes over variance-matched
    directions, larger for higher-variance emotion directions). The isotropic
    noise of the orthogonal complement has variance ``NOISE_FLOOR * min(lam)``
    per dim and slow/fast shares ``NOISE`` (population level only).
    """
    p = int(n_probes)
    m_g = n_generic(hidden, p)
    m = p + m_g
    rng = rng_for(seed, "hidden")
    x_e = rng.uniform(*X_EMOTION, size=p)
    x_g = np.linspace(X_GENERIC[1], X_GENERIC[0], m_g) if m_g > 1 else np.array([np.mean(X_GENERIC)])
    x = np.concatenate([x_e, x_g])
    lam = 10.0 ** (2.0 * x - 1.0)
    span = X_EMOTION[1] - X_EMOTION[0]
    bonus = np.concatenate([BONUS[0] + BONUS[1] * (x_e - X_EMOTION[0]) / span, np.zeros(m_g)])
    w_slow = GENERIC[0] + GENERIC[1] * x + bonus
    w_fast = np.concatenate([np.full(p, W_FAST["emotion"]), np.full(m_g, W_FAST["generic"])])
    sigma2 = float(NOISE_FLOOR * lam.min())
    g = rng.standard_normal((hidden, m))
    basis, r = np.linalg.qr(g)
    basis *= np.sign(np.diag(r))  # unique QR: positive diagonal
    mean = 0.5 * rng.standard_normal(hidden)
    coef = np.eye(p) + 0.5 * rng.standard_normal((p, p)) / np.sqrt(p)
    coef *= np.exp(0.3 * rng.standard_normal(p))[:, None]
    return Hidden(hidden=int(hidden), n_probes=p, lam=lam, w_slow=w_slow, w_fast=w_fast, bonus=bonus,
                  sigma2=sigma2, noise_w_slow=NOISE["w_slow"], noise_w_fast=NOISE["w_fast"], basis=np.ascontiguousarray(basis), mean=mean, coef=coef,
                  phi_slow=float(phi_slow), phi_fast=float(phi_fast))


def expected_residuals(hidden, lag, n_match=20, n_directions=5420, n_k=20, seed=0):
    """Expected variance-matched residual of each probe under the population moments.

    Draws ``n_directions`` unit vectors uniform on the top-k eigenspace of the
    population covariance for ``n_k`` values of k spaced geometrically in
    [1, hidden] (equal numbers per k), computes their exact population lag
    correlation and variance explained, and for each probe subtracts the
    median correlation of the ``n_match`` directions nearest in variance
    explained. Everything is in the latent basis: no (hidden x hidden) matrix.

    Returns
    -------
    residual : (n_probes,) array
    dir_ve, dir_r : arrays of the random directions' variance explained and r
    """
    rng = rng_for(seed, "truth")
    H = hidden.hidden
    order = np.argsort(-hidden.lam, kind="stable")
    lam_all = np.concatenate([hidden.lam[order], np.full(H - hidden.m, hidden.sigma2)])
    rho = hidden.w_slow * hidden.phi_slow ** lag + hidden.w_fast * hidden.phi_fast ** lag
    cov_all = np.concatenate([hidden.lam[order] * rho[order], np.full(H - hidden.m, hidden.sigma2 * hidden.noise_rho(lag))])
    trace = hidden.trace()
    ks = np.unique(np.geomspace(1, H, n_k).round().astype(int))
    per = max(1, n_directions // ks.size)
    ve, r = [], []
    for k in ks:
        u = rng.standard_normal((per, k))
        u2 = u * u
        u2 /= u2.sum(1, keepdims=True)
        var = u2 @ lam_all[:k]
        ve.append(var / trace)
        r.append((u2 @ cov_all[:k]) / var)
    ve = np.concatenate(ve)
    r = np.concatenate(r)
    vectors = hidden.vectors
    p_var, _, _ = hidden.latent_weights(vectors)
    p_ve = p_var / ((vectors * vectors).sum(1) * trace)
    p_r = hidden.lag_r(vectors, lag)
    nearest = np.argsort(np.abs(ve[None, :] - p_ve[:, None]), axis=1, kind="stable")[:, :n_match]
    residual = p_r - np.median(r[nearest], axis=1)
    return residual, ve, r
