"""The methods and provenance sections of the report: every definition and parameter, stated once."""

import json

from ..pipeline import PRESETS, STEPS, all_params, preset_steps
from ..pipeline.registry import describe
from ._format import count, num
from .model import Bullets, Code, Paragraph, Section, Table, literal

__all__ = ["methods_section", "provenance_section", "param", "inference_bullets", "recorded_tests", "method_words"]

_WHY_CONVERSATIONS = ("Tokens within a turn, turns within a conversation, and probes measured on the same turns are "
                      "not independent, so a test that counts tokens, turns or probes as independent draws "
                      "overstates the evidence; the conversations are the independent draws of the study design")


def param(results, key, default=None):
    """A run parameter from the results' root attrs (``param_<key>``), decoded."""
    value = results.attrs.get(f"param_{key}", default)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def methods_section(results):
    """Definitions of every statistic in the report, with the parameters of this run."""
    defaults = {name: p.default for name, p in all_params().items()}
    p = {k: param(results, k, defaults[k]) for k in defaults}  # a parameter no step of this run read: its default
    p["seed"] = results.attrs.get("seed", p["seed"])
    k_sweep = p["k_sweep"]
    k_text = ("the default sweep: 20 values of k spaced evenly in log scale from 1 to the hidden size"
              if k_sweep in (None, "none") else "k = " + ", ".join(str(k) for k in k_sweep))
    sec = Section("Methods", label="sec-methods")
    sec.add(Paragraph(
        "Notation: *z* is a probe's activation standardised over all tokens (mean 0, population standard "
        f"deviation, ddof = 0); *L* is the lag (here L = {p['lag']}); a *segment* is one turn (one "
        "(conversation, turn) pair) of the target model; a *valid pair* is two tokens t and t + L in the same "
        "segment. Sums are accumulated in float64 with the means removed first, so large offsets lose no "
        "digits."))
    ran = set(results.children)
    bullets = [(steps, text) for steps, text in [
        (("persistence", "profile"), f"**Lag persistence.** Per probe, the Pearson correlation between the activation at t and at t + L "
        f"over all valid pairs, pooled across segments (L = {p['lag']}). The lag profile is the same "
        f"correlation for every L from 0 to {p['max_lag']}, with the number of pairs at each L."),
        (("trajectories",), "**Trajectories.** Tokens are binned by initial strength |z_t| in [1, 2), [2, 3), [3, 4) and "
        f"[4, ∞). For each τ from 0 to {p['max_lag']}, the mean of sign(z_t)·z_(t+τ) over the tokens of a "
        "bin whose τ-successor lies in the same segment, computed per probe and then averaged over the probes "
        "with equal weight; the numbers of tokens are kept."),
        (("decay", "decay_profile"), "**Decay fits.** a + b·2^(−τ/h_fast) + c·2^(−τ/h_slow) (b, c ≥ 0, h_fast ≤ h_slow), or the "
        "one-exponential model a + b·2^(−τ/h) when its AIC (n·ln(RSS/n) + 2k) is lower, is fitted by least squares "
        "to each trajectory and to the lag profile averaged over probes (from L = 1); h are half-lives in tokens, "
        f"a the tail level. 95% percentile intervals come from {p['n_boot']} bootstrap resamples of whole "
        "conversations, each refitted with the chosen model."),
        (("random_directions", "candidates"), f"**Random directions.** {count(p['n_random'])} unit vectors uniform on the sphere of the hidden space "
        f"(Figure 3 null), and {count(p['n_candidates'])} candidate vectors uniform on the spheres of the "
        f"top-k eigenspaces of the activation covariance Σ, spread evenly over {k_text}. Their lag "
        "persistence comes from the study's `/random` activations when present, else exactly from the "
        "second moments in `/moments`: r = v'Cxy v / sqrt(v'Cxx v · v'Cyy v), with Cxx, Cyy and Cxy the "
        "covariances of the activations at t and at t + L over valid pairs. Variance explained of a unit "
        "vector v is v'Σv / trace(Σ)."),
        (("variance_matched", "emotion_pcs", "sae_matched", "ratings"), f"**Variance matching.** Each target (probe, PC or SAE feature) is matched to the {p['n_matched']} "
        "candidates nearest in variance explained (absolute difference; a target never matches itself). "
        f"Residual persistence = target persistence − the {p['match_stat']} persistence of its matches "
        f"({p['rating_stat']} in the rating analyses of Figure 10). The residuals are summarised by their "
        "mean, the number positive, and one-sample tests against 0 (t-test, Wilcoxon signed-rank, "
        "two-sided sign test)."),
        (("emotion_pcs",), "**Emotion-space PCs.** PCA of the probe activations over all tokens; each PC's scores are a new "
        "series whose lag persistence is measured like a probe's; its hidden-space direction is the PC's "
        "combination of probe vectors, which gives its variance explained and so its variance-matched "
        "residual. Spearman's ρ of PC rank against residual."),
        (("sae_persistence",), f"**SAE firing persistence.** Per feature, P(fires at t + L | fires at t) − P(fires at t + L | does "
        f"not fire at t) over valid t. Features that fire fewer than {p['min_fires']} times over all tokens "
        "are excluded (and counted)."),
        (("sae_matched", "ratings"), "**Subspace fraction.** An orthonormal basis of the span of the probe vectors by SVD; for a feature's "
        "decoder vector d, ||P d|| / ||d|| with P the projection on that span. Cosine of each feature with "
        "each probe."),
        (("ratings",), "**Rating analyses.** Spearman's ρ (average ranks for ties; NaN dropped pairwise, n reported) of "
        "subspace fraction with each rating, of the two ratings with each other, of residual persistence with "
        "each rating, and of the self rating with variance explained."),
        (("mentions",), f"**Mention tests.** For every emotion word named in at least {p['min_mentions']} rated features' "
        "transcripts, a one-sided permutation test that features whose transcript names it have a higher "
        "cosine with that emotion's probe (statistic: mean(mentioning) − mean(others); "
        f"{count(p['n_perm'])} permutations, p = (1 + #{{T_perm ≥ T_obs}}) / (1 + n_perm), or exact "
        f"enumeration when there are fewer labellings); BH-FDR over the emotions tested at α = {p['alpha']}."),
        (("steering",), "**Steering effect.** Contrast = the steered emotion's activation − the mean of the other probes. "
        "Per (emotion, offset): z = (mean steered − mean baseline) / sqrt(se_steered² + se_baseline²), "
        "se = sd (ddof = 1) / sqrt(n); two-sided normal p; BH-FDR across emotions at each offset; "
        f"significant when q ≤ {p['alpha']}; persistent when significant with z > 0, anti-persistent "
        "when significant with z < 0."),
        ((), "**Conventions.** BH-FDR leaves NaN p-values out of the family (their q is NaN). Every random step "
        f"takes a seed derived from the run seed ({p['seed']}) and the step's name, so the same study and "
        "seed give the same numbers for any thread count, whichever command ran the step."),
    ] if not steps or ran & set(steps)]
    conv = inference_bullets(results)
    at = next((i for i, (steps, _) in enumerate(bullets) if not steps), len(bullets))  # before the conventions
    bullets[at:at] = [((), text) for text in conv]
    sec.add(Bullets([text for _, text in bullets]))
    rows = []
    for key in sorted(k[len("param_"):] for k in results.attrs if k.startswith("param_")):
        value = param(results, key)
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        rows.append([f"`{key}`", literal(text)])
    command = f"emostats {results.attrs.get('preset', 'run')}"
    sec.add(Table(["parameter", "value"], rows, f"Parameters of this run (`{command}`).",
                  label="tbl-parameters", align="ll", breakable=True))
    return sec


def provenance_section(results):
    """Where the numbers come from: input file and hash, versions, seeds, time per step."""
    a = results.attrs
    sec = Section("Provenance", label="sec-provenance")
    rows = [
        ["emostats version", literal(a.get("emostats_version", "?"))],
        ["input file(s)", literal(a.get("input_files", "") or "(an opened study)")],
        ["input SHA-256", f"`{a.get('input_sha256') or 'unknown'}`"],
        ["run seed", str(a.get("seed", "?"))],
        ["results created", literal(a.get("created", "?"))],
        ["report created", literal(a.get("report_created", "?"))],
        ["Python / NumPy / xarray", literal(f"{a.get('python', '?')} / {a.get('numpy', '?')} / "
                                            f"{a.get('xarray', '?')}")],
    ]
    long = []
    for key in sorted(k for k in a if k.startswith("study_")):
        text = str(a[key])
        if len(text) > 160:
            long.append(key[len("study_"):])
            continue
        rows.append([literal(f"study: {key[len('study_'):]}"), literal(text)])
    if long:
        rows.append(["study: longer attributes", "in the results file: " + ", ".join(f"`study_{k}`" for k in long)])
    sec.add(Table(["item", "value"], rows, "Inputs, versions and seeds.", label="tbl-provenance", align="ll",
                  widths=("auto", "1fr"), breakable=True))
    step_rows = [["(read the study)", "into memory unless dask-backed", num(a.get("time_open"), 3), "–"],
                  ["(SHA-256 of the input)", "", num(a.get("time_sha256"), 3), "–"]]
    for name in STEPS:
        if name in results.children and results[name].attrs.get("computed_by") == "report":
            step_rows.append([f"`{name}`", "computed by the report from the groups above", "–", "–"])
            continue
        seconds = a.get(f"time_{name}")
        seed = a.get(f"seed_{name}")
        if f"skipped_{name}" in a:
            status = "skipped: " + literal(a[f"skipped_{name}"])
        elif name in results.children:
            status = "ran"
        else:
            status = "not requested"
        step_rows.append([f"`{name}`", status, "–" if seconds is None else num(seconds, 3),
                          "–" if seed is None else str(seed)])
    sec.add(Table(["step", "status", "seconds", "seed"], step_rows,
                  f"Steps of `emostats {a.get('preset', 'run')}` (total {num(a.get('time_total'), 3)} s).", label="tbl-steps",
                  align="llrr", widths=("auto", "1fr", "auto", "auto"), breakable=True))
    sec.add(Paragraph("To reproduce these numbers, run the same emostats version on the file with the SHA-256 "
                      "above:"))
    command, python = reproduce_command(results)
    sec.add(Code(f"{command}\nemostats report results.nc -o report"))
    if python:
        sec.add(Paragraph("Some parameters differ from their defaults and have no command-line option; in Python: "
                          f"`es.run(STUDY, {', '.join(python)})`."))
    return sec


def reproduce_command(results):
    """The command line that recomputes ``results`` (every non-default parameter the steps read), and the
    ``key=value`` texts of non-default parameters that only the Python call takes.

    Flags and defaults come from the step registry's parameter metadata
    (:mod:`emostats.pipeline.params`), so a new parameter needs no change here.
    """
    preset = str(results.attrs.get("preset", "run"))
    if preset not in PRESETS:
        preset = "run"
    params = all_params()
    ran = str(results.attrs.get("steps_run", "")).split()
    skipped = str(results.attrs.get("steps_skipped", "")).split()
    asked = [s for s in STEPS if s in ran or s in skipped]
    subset = bool(asked) and set(asked) != set(preset_steps(preset))
    if subset:  # only `emostats run` takes --steps
        preset = "run"
    seed = results.attrs.get("seed", param(results, "seed", params["seed"].default))
    parts = [f"emostats {preset} STUDY.nc -o results.nc", f"--lag {param(results, 'lag', params['lag'].default)}",
             f"--seed {seed}"]
    python = []
    for key, p in params.items():
        if key in ("lag", "seed", "threads") or f"param_{key}" not in results.attrs:
            continue
        value = param(results, key)
        if value == "none":
            value = None
        default = list(p.default) if isinstance(p.default, tuple) else p.default
        if value == default:
            continue
        if p.cli:
            parts.append(f"{p.flag} {describe(value)}")
        else:
            python.append(f"{key}={value!r}")
    if subset:
        parts.append(f"--steps {','.join(asked)}")
    return " ".join(parts), python


def _attr(ds, key, default=None):
    value = ds.attrs.get(key, default)
    return value.item() if hasattr(value, "item") else value


def inference_bullets(results):
    """Method bullets for the conversation bootstrap, the placebo nulls and the tests used, read from the results.

    Every number (replicates, seeds, conversations, draws, n) is the one the results recorded; a
    group or attribute that is absent gives no sentence.
    """
    out = []
    bs = results["bootstrap"] if "bootstrap" in results.children else None
    if bs is not None:
        n_boot, seed, G = _attr(bs, "n_boot"), _attr(bs, "seed"), _attr(bs, "n_conversations")
        ci = float(_attr(bs, "ci", 0.95))
        interval = _attr(bs, "interval", "percentile")
        if interval == "bca":
            how = ("the bias-corrected and accelerated (BCa) interval, its acceleration from the "
                   "leave-one-conversation-out jackknife (the percentile interval is stored too)")
        else:
            a = (1 - ci) / 2
            how = (f"the percentile interval: the {100 * a:g}% and {100 * (1 - a):g}% quantiles of the "
                   "replicates (the BCa interval is stored too)")
        text = (f"**Conversation-level inference.** {_WHY_CONVERSATIONS}. The unit of resampling is therefore the "
                f"whole conversation: each of {count(n_boot)} bootstrap replicates draws the study's "
                f"{count(G)} conversations with replacement (multinomial counts, seed {seed}) and recomputes every "
                "headline number from per-conversation sufficient statistics (lag moments, covariances and "
                "firing counts per conversation, merged with the replicate's weights; no second pass over the "
                "tokens; the variance-matched directions are re-matched in each replicate). The "
                f"{ci:.0%} CI of @tbl-summary is {how}. The conversation-level p is a jackknife t-test: "
                "t = (estimate − null) / (leave-one-conversation-out jackknife standard error) against "
                f"Student's t with G − 1 = {count(G - 1) if G is not None else 'G − 1'} degrees of freedom, "
                "two-sided; the null is 0 for residual means and correlations, and probe persistence is tested as "
                "probes minus random directions = 0.")
        if int(_attr(bs, "has_conv_moments", 1) or 0) == 0:
            text += (" This study has no `/conv_moments`, so in every replicate the random and candidate "
                     "directions keep their pooled r and variance explained (only the probe side is resampled) "
                     "and the random-direction number has no interval.")
        out.append(text)
    pl = results["placebo"] if "placebo" in results.children else None
    if pl is not None:
        kinds = [str(k) for k in pl["kind"].values] if "kind" in pl.coords else []
        what = {"isotropic": "uniform on the sphere of the hidden space (isotropic)",
                "shaped": "Σ^(1/2)·g normalised, g standard normal (shaped like the activation covariance)",
                "rotated": ("the probe set itself under a uniformly random rotation of the hidden space (rotated: "
                            "every norm and every angle between probes kept)")}
        text = (f"**Placebo nulls.** {count(_attr(pl, 'n_draws'))} placebo probe sets per kind, each with the "
                f"probes' count ({count(_attr(pl, 'n_probes'))}) and norms and rows "
                + " or ".join(what.get(k, literal(k)) for k in kinds)
                + ", replace the emotion probes and go through the same PCA, variance matching and PC-rank "
                  "Spearman, computed exactly from `/moments` (seed "
                f"{_attr(pl, 'seed')}).")
        if "span_dimension" in pl.attrs:
            text += (f" For the SAE subspace-fraction correlations the probe span is replaced by random "
                     f"{count(_attr(pl, 'span_dimension'))}-dimensional spans (uniform on the Grassmannian).")
        text += (" A number's placebo percentile is 100 · (#{draws < value} + #{draws = value} / 2) / n; its "
                 "placebo p is min(1, 2 · min(1 + #{draws ≤ value}, 1 + #{draws ≥ value}) / (1 + n))")
        text += "; the note of each row of @tbl-summary names the kind of placebo it reports." if kinds else "."
        out.append(text)
    tests = recorded_tests(results)
    if tests:
        out.append("**Tests used (as recorded in the results).** " + " ".join(tests))
    return out


_SPEARMAN = {"exact": "exact p over all n! orderings (R's cor.test, prho)",
             "edgeworth": "AS 89 Edgeworth-series p (R's cor.test, prho)",
             "t": "t approximation on n − 2 df (R's cor.test rule with ties or n > 1290)",
             "exact permutation": "exact permutation p over all n! orderings",
             "permutation": "random-permutation p"}
_WILCOXON = {"exact": "exact signed-rank distribution (R's wilcox.test)",
             "normal": "normal approximation (R's wilcox.test rule with ties, zeros or n ≥ 50)",
             "exact sign-flips": "exact p over all 2^n sign flips"}


def method_words(code, table=None):
    """The words for a recorded ``p_method`` code (``table``: the Spearman or the Wilcoxon codes).

    Examples
    --------
    >>> method_words("edgeworth")
    "AS 89 Edgeworth-series p (R's cor.test, prho)"
    >>> method_words("exact", _WILCOXON)
    "exact signed-rank distribution (R's wilcox.test)"
    """
    code = str(code)
    return (table or _SPEARMAN).get(code, f"`{code}`" if code else "")


def _scalar_attr(ds, name):
    if name in ds.variables and ds[name].size == 1:
        value = ds[name].values.reshape(()).item()
        return value
    return None


def recorded_tests(results):
    """One sentence per analysis: which test gave its p, at which n (read from ``p_method`` and friends)."""
    out = []

    def group(name):
        return results[name].to_dataset(inherit=False) if name in results.children else None

    def say(what, code, n, table=None):
        if code in (None, ""):
            return
        at = f", n = {count(n)}" if n is not None else ""
        out.append(f"{what}: {method_words(code, table)}{at}.")

    vm = group("variance_matched")
    if vm is not None:
        say("Wilcoxon signed-rank test of the probes' residuals", _scalar_attr(vm, "wilcoxon_p_method"),
            _scalar_attr(vm, "n"), _WILCOXON)
    pcs = group("emotion_pcs")
    if pcs is not None:
        say("PC-rank Spearman", _scalar_attr(pcs, "rank_p_method"), _scalar_attr(pcs, "rank_n"))
        say("Wilcoxon signed-rank test of the PCs' residuals", _scalar_attr(pcs, "residual_wilcoxon_p_method"),
            _scalar_attr(pcs, "residual_n"), _WILCOXON)
    sm = group("sae_matched")
    if sm is not None:
        say("SAE subspace-fraction Spearman", _scalar_attr(sm, "p_method"), _scalar_attr(sm, "n"))
        say("Wilcoxon signed-rank test of the SAE residuals", _scalar_attr(sm, "residual_wilcoxon_p_method"),
            _scalar_attr(sm, "residual_n"), _WILCOXON)
    ra = group("ratings")
    if ra is not None and "p_method" in ra and "pair" in ra.dims:
        by = {}
        for i in range(ra.sizes["pair"]):
            code = str(ra["p_method"].values[i])
            if not code:
                continue
            x, y = (str(ra[v].values[i]).replace("_", " ") for v in ("x", "y")) if "x" in ra else (
                str(ra["pair"].values[i]), "")
            n = int(ra["n"].values[i]) if "n" in ra else None
            by.setdefault(code, []).append(f"{literal(x)} vs {literal(y)} (n = {count(n)})" if y else literal(x))
        if by:
            out.append("Rating Spearman correlations: " + "; ".join(
                f"{method_words(code)} for {', '.join(items)}" for code, items in by.items()) + ".")
    st = group("steering")
    if st is not None and st.attrs.get("p_method"):
        out.append(f"Steering z-tests: {literal(st.attrs['p_method'])}.")
    me = group("mentions")
    if me is not None and "exact" in me and "tested" in me:
        tested = me["tested"].values.astype(bool)
        exact = int((me["exact"].values.astype(bool) & tested).sum())
        n_perm = me.attrs.get("n_perm")
        parts = []
        if exact:
            parts.append(f"exact enumeration of every labelling for {count(exact)} of {count(tested.sum())} emotions")
        if tested.sum() - exact:
            parts.append(f"{count(n_perm)} random permutations for {count(tested.sum() - exact)} of "
                         f"{count(tested.sum())} emotions")
        if parts:
            out.append("Mention permutation tests: " + "; ".join(parts) + ".")
    return out
