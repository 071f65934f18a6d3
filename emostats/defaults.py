"""Every default of every analysis and command, in one place.

The Python API (``es.run`` and the analysis functions), the command line, the
report's methods section and the docs all read their defaults from here, so a
default changes in exactly one line. Values follow SPEC.md section 2 and the
study (``seeds/persistence-and-introspection-of-emotion-features.txt``).

Examples
--------
>>> from emostats import defaults
>>> defaults.LAG, defaults.MAX_LAG, defaults.N_MATCHED
(100, 200, 20)
"""

from typing import Final

__all__ = [
    "LAG", "MAX_LAG", "SEED", "N_PERM", "N_RANDOM", "N_CANDIDATES", "N_K", "N_PER_K", "N_MATCHED",
    "MATCH_STAT", "RATING_STAT", "STATS", "MIN_FIRES", "MIN_MENTIONS", "ALPHA", "N_BOOT", "CI",
    "N_BOOT_CI", "CI_METHOD", "N_PLACEBO",
    "BINS", "SEED_MAX", "LOOP_NGRAM", "LOOP_THRESHOLD", "AFFECT_N_BOOT", "SATURATION_Z", "STEERING_OFFSETS",
    "AFFECT_SECONDS_PER_TOKEN", "AFFECT_NOISE_TOKENS", "AFFECT_HALF_LIFE_FAST_S", "AFFECT_HALF_LIFE_SLOW_S",
    "AFFECT_SHARE_FAST", "AFFECT_EVENT_CAP", "AFFECT_WINDOW_CAP", "AFFECT_WINDOW_S", "AFFECT_N_PCS",
]

#: lag L of every persistence metric (probes, random directions, SAE features), tokens
LAG: Final = 100
#: largest lag of the lag profile and largest tau of the trajectories, tokens
MAX_LAG: Final = 200
#: master seed of a run; every random step derives its own (:func:`emostats.seeds.derive_seed`)
SEED: Final = 0
#: largest seed accepted (results store it as an int64 attribute)
SEED_MAX: Final = 2**63 - 1
#: permutations of a permutation test (the mention tests)
N_PERM: Final = 10_000
#: directions uniform on the sphere of the hidden space (Figure 3)
N_RANDOM: Final = 1000
#: variance-matching candidates from top-k eigenspaces (the study's 5,420)
N_CANDIDATES: Final = 5420
#: number of log-spaced k values of the default top-k sweep (1 .. hidden)
N_K: Final = 20
#: candidates per k of :func:`emostats.random_direction_sweep` called on its own (N_CANDIDATES / N_K)
N_PER_K: Final = 271
#: variance-matched neighbours per target
N_MATCHED: Final = 20
#: statistic of the matched values subtracted from a probe, PC or SAE feature (the study: median)
MATCH_STAT: Final = "median"
#: the same for the rating analyses (the study's Figure 10: mean)
RATING_STAT: Final = "mean"
#: the statistics a matched residual may use
STATS: Final = ("median", "mean")
#: SAE features firing fewer times are excluded from firing persistence
MIN_FIRES: Final = 101
#: an emotion enters the mention tests when at least this many rated features name it ("more than 4")
MIN_MENTIONS: Final = 5
#: BH-FDR level of the steering and mention tests
ALPHA: Final = 0.05
#: bootstrap resamples over conversations of the decay fits
N_BOOT: Final = 200
#: coverage of bootstrap intervals
CI: Final = 0.95
#: bootstrap resamples (whole conversations) of the summary's headline numbers (emostats.inference)
N_BOOT_CI: Final = 1000
#: interval of the summary's ci_low/ci_high: "percentile" or "bca" (docs/inference.md says why percentile)
CI_METHOD: Final = "percentile"
#: placebo probe sets (and random spans) per kind
N_PLACEBO: Final = 200
#: bins of initial strength |z_t| of the trajectories (Figure 2)
BINS: Final = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, float("inf")))
#: bootstrap resamples of ``emostats affect-profile``
AFFECT_N_BOOT: Final = 100
#: |z| at which the affect profile's activation saturates
SATURATION_Z: Final = 4.0
#: offsets after a steering pulse reported in the summary
STEERING_OFFSETS: Final = (5, 100)
#: wall-clock seconds per token of the agent's output when an affect profile is turned into time half-lives
#: (an assumption to set per agent: 10 s is a session writing 360 tokens an hour)
AFFECT_SECONDS_PER_TOKEN: Final = 10.0
#: a fitted half-life below this many tokens is token-level noise (the fit starts at lag 1, step 1)
AFFECT_NOISE_TOKENS: Final = 2.0
#: fallback half-lives (s) of the affect state's fast and slow components: the pattern's 30 min to 4 h
AFFECT_HALF_LIFE_FAST_S: Final = 1800.0
AFFECT_HALF_LIFE_SLOW_S: Final = 14400.0
#: fallback share of a bump that goes to the fast component when no fast decay was measured
AFFECT_SHARE_FAST: Final = 0.5
#: largest |delta| of one agent bump, and of all agent bumps of one axis and sign within the window
AFFECT_EVENT_CAP: Final = 0.2
AFFECT_WINDOW_CAP: Final = 0.4
#: the sliding window (seconds of the state's clock) of the per-window cap
AFFECT_WINDOW_S: Final = 3600.0
#: emotion-space principal components measured by the affect profile (a PC vocabulary)
AFFECT_N_PCS: Final = 6
#: n of the n-gram repeat share that marks a looping turn (/tokens repeat_share)
LOOP_NGRAM: Final = 8
#: a turn loops when more than this share of its n-grams repeat an earlier n-gram of the turn
LOOP_THRESHOLD: Final = 0.1
