"""Build the report's content model from a results tree (once; every writer renders it).

One section per analysis, in the order of the study's figures; a section whose
results are missing says what the study lacks. Numbers are read from the
results tree only, so the report of a results file matches the run exactly.
"""

import numpy as np

from ..defaults import ALPHA as _ALPHA
from ..pipeline import PRESETS as _PRESETS
from ..pipeline import STEPS, preset_steps
from . import _format as f
from .methods import methods_section, param, provenance_section
from .model import Bullets, Document, Figure, Note, Paragraph, Section, Table, literal

__all__ = ["build_document", "SECTIONS"]


# --------------------------------------------------------------------------- helpers


def _ds(results, name):
    return results[name].to_dataset(inherit=False) if name in results.children else None


def _v(ds, name, default=None):
    """A scalar from a dataset variable or attr (None when absent)."""
    if ds is None:
        return default
    if name in ds.variables and ds[name].size == 1:
        return f.scalar(ds[name])
    if name in ds.attrs:
        value = ds.attrs[name]
        return value.item() if hasattr(value, "item") and np.size(value) == 1 else value
    return default


def _summary(results, row, column="value"):
    ds = _ds(results, "summary")
    if ds is None or row not in ds["row"].values or not np.isfinite(float(ds["value"].sel(row=row))):
        return None  # the row's analysis did not run
    return f.scalar(ds[column].sel(row=row))


def command_of(results):
    """The command that wrote the results (``emostats run``, ``emostats persistence``, ...)."""
    return f"emostats {results.attrs.get('preset', 'run')}"


def _missing_note(results, steps, what):
    """A Note saying why the results of ``steps`` are missing: skipped (and why), outside the preset, or not run."""
    reasons = [results.attrs.get(f"skipped_{s}") for s in steps]
    reasons = [r for r in reasons if r]
    preset = str(results.attrs.get("preset", "run"))
    missing = [s for s in steps if s not in results.children]
    if reasons:
        why = "; ".join(dict.fromkeys(reasons))
        because = "because it " if why.startswith("needs") else "because "
        text = f"{literal(what)} are missing: `{command_of(results)}` skipped this step {because}{literal(why)}."
    elif preset != "run" and preset in _PRESETS and missing and not set(missing) & set(preset_steps(preset)):
        text = (f"{literal(what)} are missing: the {literal(', '.join(missing))} step(s) are not part of "
                f"`{command_of(results)}`; `emostats run` computes them.")
    else:
        text = f"{literal(what)} are missing: the results do not contain the {literal(', '.join(steps))} step(s)."
    return Note(text, title="Not available")


def _figure(figures, name, caption, width=1.0):
    """The Figure block of ``name`` when it was drawn; else a Note saying why not."""
    value = figures.get(name)
    if isinstance(value, str):
        return Figure(value, caption, name, width)
    if isinstance(value, Exception):
        return Note(literal(f"The figure could not be drawn ({type(value).__name__}: {value})."),
                    title="Figure missing")
    return None


def _add(section, *blocks):
    section.add(*[b for b in blocks if b is not None])
    return section


# --------------------------------------------------------------------------- sections


def _sec_summary(results, figures):
    sec = Section("Summary", label="sec-summary")
    ds = _ds(results, "summary")
    if ds is None:
        return sec.add(_missing_note(results, ["summary"], "The summary numbers"))
    rows = []
    for i in range(ds.sizes["row"]):
        r = ds.isel(row=i)
        value = f.scalar(r["value"])
        kind = str(r["kind"].values)
        text = {"count": f.count, "signed": f.signed, "rho": f.rho}.get(kind, f.num)(value)
        rows.append([literal(str(r["quantity"].values)), text, f.pval(r["p"]),
                     f.count(r["n"]), literal(str(r["detail"].values)), literal(str(r["study"].values))])
    sec.add(Table(["quantity", "value", "p", "n", "detail", "in the study (Kimi K2.5)"], rows,
                  "The study's closing paragraph as a table: this study's numbers beside the published ones. "
                  "Empty cells: the analysis did not run (see its section) or has no p-value.",
                  label="tbl-summary", align="lrrrll", widths=("1.6fr", "auto", "auto", "auto", "1fr", "1.2fr"),
                  breakable=True))
    sec.add(Paragraph(_closing_paragraph(results)))
    return sec


def _closing_paragraph(results):
    """The study's closing paragraph, with this study's numbers (sentences for what ran)."""
    s = lambda row, col="value": _summary(results, row, col)  # noqa: E731
    lag = param(results, "lag")
    out = []
    summary = _ds(results, "summary")
    n_conv = summary.attrs.get("n_conversations") if summary is not None else None
    n_probes = s("probe_persistence", "n")
    if s("probe_persistence") is not None:
        lead = f"Across {f.count(n_conv)} conversations, the " if n_conv else "The "
        text = (f"{lead}{f.count(n_probes)} emotion probes show a mean correlation between the activation at "
                f"token t and at t + {lag} of {f.num(s('probe_persistence'))}")
        if s("random_persistence") is not None:
            text += (f", compared to {f.num(s('random_persistence'))} for "
                     f"{f.count(s('random_persistence', 'n'))} random unit vectors in the same activation space")
        out.append(text + ".")
    if s("residual_mean") is not None:
        out.append(f"Each probe's persistence minus the {param(results, 'match_stat')} of its "
                   f"{param(results, 'n_matched')} variance-matched random directions averages "
                   f"{f.signed(s('residual_mean'))} (t-test {f.p_is(s('residual_mean', 'p'))}, "
                   f"{f.count(s('residual_positive'))} of {f.count(s('residual_positive', 'n'))} probes positive).")
    if s("steering_5") is not None:
        text = (f"Steering pulses make {f.count(s('steering_5'))} of {f.count(s('steering_5', 'n'))} emotions "
                f"BH-significant {int(s('steering_5', 'offset'))} tokens after the pulse")
        if s("steering_100") is not None:
            text += (f"; {f.count(s('steering_100'))} are still significant at offset "
                     f"{int(s('steering_100', 'offset'))}")
        out.append(text + ".")
    if s("sae_spearman") is not None:
        out.append(f"The overlap of SAE features with the emotion subspace correlates with their residual firing "
                   f"persistence (Spearman {f.rho(s('sae_spearman'))}, {f.p_is(s('sae_spearman', 'p'))}, "
                   f"n = {f.count(s('sae_spearman', 'n'))}).")
    if s("self_rating_residual") is not None:
        out.append(f"The self-evaluated emotionality of SAE features correlates with their residual persistence "
                   f"(ρ = {f.rho(s('self_rating_residual'))}, {f.p_is(s('self_rating_residual', 'p'))}).")
    if not out:
        return "No analysis of the closing paragraph could run on this study (see the sections below)."
    return "In the words of the study's summary: " + " ".join(out)


def _sec_persistence(results, figures):
    sec = Section("Lag persistence of the emotion probes", label="sec-persistence")
    lag = param(results, "lag")
    per = _ds(results, "persistence")
    if per is None:
        return sec.add(_missing_note(results, ["persistence"], "Probe persistence results"))
    r = per["r"]
    finite = np.isfinite(r.values)
    n_def = int(finite.sum())
    if n_def == 0:
        summary = (f"Undefined for every probe: no two tokens {lag} apart lie in the same turn (or every probe "
                   "is constant), so there is no lag correlation to report; choose a smaller lag.")
    else:
        over = (f"the {f.count(r.size)} probes" if n_def == r.size else
                f"the {f.count(n_def)} probes with a defined r ({f.count(r.size - n_def)} constant or without pairs)")
        summary = (f"Mean over {over}: **{f.num(float(r.mean()))}** (median {f.num(float(r.median()))}, range "
                   f"{f.num(float(r.min()))} to {f.num(float(r.max()))}).")
    sec.add(Paragraph(
        f"Pearson correlation of each probe's activation at token t with its activation at t + {lag}, over "
        f"{f.count(_v(per, 'n_pairs'))} valid pairs (t and t + {lag} in the same turn) pooled across "
        f"{f.count(per.attrs.get('n_segments'))} turns. " + summary))
    defined = np.flatnonzero(finite)
    order = defined[np.argsort(-r.values[defined], kind="stable")]  # probes with an undefined r are not ranked
    k = min(5, order.size)
    names = r[r.dims[0]].values

    def listing(idx):
        return ", ".join(f"{literal(str(names[i]))} ({f.num(float(r.values[i]))})" for i in idx)

    if order.size > 2 * k:
        sec.add(Paragraph(f"Most persistent: {listing(order[:k])}. Least persistent: "
                          f"{listing(order[::-1][:k])}."))
    traj = _ds(results, "trajectories")
    if traj is not None:
        _add(sec, _figure(figures, "fig-trajectories",
             "Trajectories of the emotion probes (equivalent of the study's Figure 2). Tokens are binned by their "
             "initial strength |z_t| (z = activation standardised over all tokens); each line is the mean of "
             "sign(z_t)·z_(t+τ) over the tokens of the bin whose τ-successor is in the same turn, computed per "
             f"probe and averaged over probes with equal weight, for τ = 0 to {param(results, 'max_lag')} tokens."))
    _add(sec, _figure(figures, "fig-profile",
         f"Lag profile: Pearson r between the activation at t and at t + L, pooled over valid pairs, for L = 0 to "
         f"{param(results, 'max_lag')} tokens; the line is the mean over probes, the band spans the 10th to 90th "
         "percentile of the probes."))
    decay, decay_p = _ds(results, "decay"), _ds(results, "decay_profile")
    if decay is None and decay_p is None:
        return sec.add(_missing_note(results, ["decay", "decay_profile"], "Decay fits"))
    _add(sec, _figure(figures, "fig-decay",
         "Decay fits: a + b·2^(−τ/h_fast) + c·2^(−τ/h_slow) (or a single exponential when its AIC is lower), "
         "fitted by least squares to each trajectory of @fig-trajectories (left; points are the data, lines the "
         "fits) and to the lag profile averaged over probes (right, log lag axis, from L = 1). Half-lives h in "
         "tokens and tail levels a, with bootstrap intervals, are in @tbl-decay."))
    sec.add(_decay_table(decay, decay_p, results))
    return sec


def _ci(ds, name, sel):
    if f"{name}_ci" not in ds:
        return ""
    lo, hi = (f.scalar(ds[f"{name}_ci"].sel({**sel, "bound": b})) for b in ds["bound"].values[:2])
    return f" [{f.num(lo)}, {f.num(hi)}]"


def _decay_row(ds, label, sel):
    pick = (lambda v: v.sel(sel)) if sel else (lambda v: v)  # noqa: E731
    n_comp = int(f.scalar(pick(ds["n_components"])))
    comps = list(ds["component"].values)
    cells = [literal(label), {0: "no fit", 1: "one", 2: "two"}.get(n_comp, str(n_comp))]
    for c in comps:
        h = f.scalar(pick(ds["half_life"]).sel(component=c))
        cells.append(f.num(h) + (_ci(ds, "half_life", {**sel, "component": c}) if np.isfinite(h) else ""))
    cells.append(f.num(f.scalar(pick(ds["tail_level"]))) + _ci(ds, "tail_level", sel))
    return cells


def _decay_table(decay, decay_p, results):
    rows = []
    comps = None
    if decay is not None:
        comps = list(decay["component"].values)
        bins = decay["bin"].values if "bin" in decay.dims else [None]
        for b in bins:
            label = f"trajectory |z| in {b}" if b is not None else "trajectory"
            rows.append(_decay_row(decay, label, {"bin": b} if b is not None else {}))
    if decay_p is not None:
        comps = comps or list(decay_p["component"].values)
        rows.append(_decay_row(decay_p, "mean lag profile r(L)", {}))
    boot = (decay or decay_p).attrs.get("n_boot", param(results, "n_boot"))
    heads = ["curve", "exponentials"] + [f"half-life {c} (tokens)" for c in comps] + ["tail level"]
    return Table(heads, rows, f"Decay fits: half-lives in tokens and the tail level, with 95% percentile "
                 f"intervals from {f.count(boot)} bootstrap resamples of whole conversations in brackets."
                 + _beyond_window_note(decay, decay_p),
                 label="tbl-decay", align="ll" + "r" * (len(heads) - 2))


def _beyond_window_note(*fits):
    """A caption sentence when a half-life (or interval end) lies beyond the fitted window or at the fit's bound."""
    windows, bounds = [], []
    for ds in fits:
        if ds is None or "max_tau" not in ds.attrs:
            continue
        values = [np.asarray(ds["half_life"].values, dtype=float).ravel()]
        if "half_life_ci" in ds:
            values.append(np.asarray(ds["half_life_ci"].values, dtype=float).ravel())
        values = np.concatenate(values)
        values = values[np.isfinite(values)]
        window = float(ds.attrs["max_tau"])
        if (values > window).any():
            windows.append(window)
        if "half_life_bounds" in ds.attrs:
            bound = float(np.asarray(ds.attrs["half_life_bounds"]).ravel()[-1])
            if (values >= bound * (1 - 1e-6)).any():
                bounds.append(bound)
    if not windows:
        return ""
    join = lambda xs: " or ".join(f.num(x) for x in sorted(set(xs)))  # noqa: E731
    note = (f" Half-lives longer than the fitted window ({join(windows)} tokens) are extrapolations of the "
            "curve's shape, not observed decays")
    if bounds:
        note += f"; an interval end at {join(bounds)} tokens is the fit's upper bound (the data do not limit it)"
    return note + "."


def _sec_random(results, figures):
    sec = Section("Emotion probes against random directions", label="sec-random")
    rnd = _ds(results, "random_directions")
    per = _ds(results, "persistence")
    if rnd is None or per is None:
        return sec.add(_missing_note(results, ["random_directions", "persistence"], "Random-direction results"))
    rr, pr = rnd["r"], per["r"]
    population = ("uniform on the unit sphere of the hidden space" if rnd.attrs.get("source") == "moments"
                  else "the study's /random directions")
    above = float((pr > float(rr.quantile(0.99))).mean())
    sec.add(Paragraph(
        f"Mean lag persistence of {f.count(rr.size)} random unit directions ({population}): "
        f"**{f.num(float(rr.mean()))}** (sd "
        f"{f.num(float(rr.std()))}); of the {f.count(pr.size)} probes: **{f.num(float(pr.mean()))}**. "
        f"{100 * above:.0f}% of the probes lie above the 99th percentile of the random directions. Random "
        "directions persist too (the model is autoregressive), which is why the next section matches "
        "variance."))
    _add(sec, _figure(figures, "fig-random",
         f"Lag persistence (r at L = {param(results, 'lag')}) of the emotion probes against random unit "
         "directions (equivalent of the study's Figure 3). The persistence of a random direction v is computed "
         "exactly from the lagged second moments of the activations, r = v'Cxy v / sqrt(v'Cxx v · v'Cyy v) "
         "(or from its dumped activations)."))
    return sec


def _tests_table(ds, what, label, prefix=""):
    """The one-sample tests of residuals against 0 (variables of variance_matched / sae_matched)."""
    g = lambda name: _v(ds, prefix + name)  # noqa: E731
    n = g("n")
    if n is None and "residual" in ds:
        n = int(np.isfinite(ds["residual"]).sum())
    rows = [["mean residual", f.signed(g("mean")), "", f.count(n)],
            ["median residual", f.signed(g("median")), "", ""],
            [f"{what} with residual > 0", f.count(g("n_positive")), f.pval(g("sign_p")), "sign test"],
            ["t-test (95% CI of the mean)", f"t = {f.num(g('t'))} [{f.num(g('ci_low'))}, {f.num(g('ci_high'))}]",
             f.pval(g("t_p")), ""],
            ["Wilcoxon signed-rank", f"W+ = {f.num(g('wilcoxon_W'))}", f.pval(g("wilcoxon_p")), ""]]
    rows = [r for r in rows if "–" not in r[1] or r[2] not in ("", "–")]
    return Table(["statistic", "value", "p (two-sided)", "n / test"], rows,
                 f"Residual persistence of the {what} against 0.", label=label, align="lrrl")


def _sec_matched(results, figures):
    sec = Section("Residual persistence over variance-matched directions", label="sec-matched")
    vm = _ds(results, "variance_matched")
    if vm is None:
        return sec.add(_missing_note(results, ["variance_matched"], "Variance-matched results"))
    cand = _ds(results, "candidates")
    n_cand = vm.attrs.get("n_candidates", cand.sizes.get("direction") if cand is not None else None)
    pop = ("uniform on the unit spheres of the top-k eigenspaces of the activation covariance"
           if cand is not None and cand.attrs.get("source") == "moments" else "the study's /random directions")
    sec.add(Paragraph(
        f"Each probe is matched to the {param(results, 'n_matched')} of {f.count(n_cand)} candidate directions "
        f"({literal(pop)}) nearest in variance explained; residual = probe persistence − "
        f"{param(results, 'match_stat')} persistence of its matches. Mean residual "
        f"**{f.signed(_v(vm, 'mean'))}** (t-test {f.p_is(_v(vm, 't_p'))}), "
        f"{f.frac(_v(vm, 'n_positive'), _v(vm, 'n'))} probes positive."))
    sec.add(_tests_table(vm, "probes", "tbl-matched-tests"))
    _add(sec, _figure(figures, "fig-residuals",
         "Residual persistence of each emotion probe above the "
         f"{param(results, 'match_stat')} of its {param(results, 'n_matched')} variance-matched random directions "
         "(equivalent of the study's Figure 4)."))
    return sec


def _sec_pcs(results, figures):
    sec = Section("Principal components of the emotion space", label="sec-pcs")
    pcs = _ds(results, "emotion_pcs")
    if pcs is None:
        return sec.add(_missing_note(results, ["emotion_pcs"], "Emotion-space PC results"))
    ratio = pcs["pca_variance_ratio"].values
    sec.add(Paragraph(
        f"PCA of the probe activations over all tokens gives {pcs.sizes['pc']} components; the first explains "
        f"{100 * ratio[0]:.1f}% of the variance of the probe activations, the first five "
        f"{100 * ratio[:5].sum():.1f}%."))
    if "residual" not in pcs:
        sec.add(Note("The PCs have no residual persistence: it needs `/probes` `vector` (each PC's direction in "
                     "hidden space) and `/moments` (its variance explained and the candidates).",
                     title="Not available"))
        return sec
    sec.add(Paragraph(
        f"Spearman's ρ of PC rank (1 = most variance) against residual persistence: "
        f"**{f.rho(_v(pcs, 'rank_rho'))}** ({f.p_is(_v(pcs, 'rank_p'))}, n = {f.count(_v(pcs, 'rank_n'))}). "
        "A negative ρ means the leading, less noisy PCs are the more persistent ones, as the study found. Mean "
        f"residual {f.signed(_v(pcs, 'residual_mean'))}, {f.frac(_v(pcs, 'residual_n_positive'), _v(pcs, 'residual_n'))} "
        "PCs positive."))
    _add(sec, _figure(figures, "fig-pcs",
         "Residual persistence of each principal component of the probe activations against its rank "
         "(equivalent of the study's Figure 5). A PC's direction in hidden space is its combination of probe "
         f"vectors; its residual is its persistence minus the {param(results, 'match_stat')} of its "
         f"{param(results, 'n_matched')} variance-matched random directions."))
    return sec


def _sec_steering(results, figures):
    sec = Section("Causal effect of steering", label="sec-steering")
    st = _ds(results, "steering")
    if st is None:
        return sec.add(_missing_note(results, ["steering"], "Steering results"))
    alpha = param(results, "alpha")
    n_em = st.sizes.get("emotion", 0)
    offsets = [int(o) for o in st["offset"].values]
    show = [o for o in (0, 1, 2, 5, 10, 20, 50, 100, 150, 199, 200) if o in offsets] or offsets[:8]
    rows = []
    for o in show:
        sel = st.sel(offset=o)
        tested = int(sel["n_tested"])
        rows.append([str(o), f.frac(int(sel["n_persistent"]), tested), f.frac(int(sel["n_antipersistent"]), tested),
                     f.signed(float(sel["z"].mean())), f.num(float(abs(sel["z"]).median()))])
    sec.add(Paragraph(
        f"For each of the {n_em} steered emotions and each token offset after the pulse (offset 0 = the first "
        "token after it), a z-score of the contrast (the steered emotion's activation − the mean of the other "
        f"probes) between {int(st['n_steered'].max())} steered and {int(st['n_baseline'].max())} baseline "
        f"samples; BH-FDR across emotions at each offset, significant when q ≤ {alpha}."))
    sec.add(Table(["offset (tokens)", "persistent (z > 0)", "anti-persistent (z < 0)", "mean z", "median |z|"],
                  rows, f"Emotions with a significant steering effect (BH-FDR q ≤ {alpha}) at selected offsets.",
                  label="tbl-steering", align="rrrrr"))
    _add(sec, _figure(figures, "fig-steering",
         "Causal effect (z-score) of a steering pulse on each emotion probe across the tokens after the pulse "
         "(equivalent of the study's Figure 6); rows are emotions, colour is z (red: elevated, blue: "
         "suppressed). Top panel: numbers of emotions BH-FDR significantly persistent (red) and anti-persistent "
         "(blue) at every fifth offset."))
    return sec


def _sec_sae(results, figures):
    sec = Section("SAE features and the emotion subspace", label="sec-sae")
    fp = _ds(results, "sae_persistence")
    sm = _ds(results, "sae_matched")
    if fp is None:
        return sec.add(_missing_note(results, ["sae_persistence"], "SAE firing-persistence results"))
    lag = param(results, "lag")
    inc = fp["included"].astype(bool)
    sec.add(Paragraph(
        f"Firing persistence P(fires at t + {lag} | fires at t) − P(fires at t + {lag} | does not fire at t) over "
        f"{f.count(_v(fp, 'n_valid'))} valid t, for the {f.frac(int(inc.sum()), fp.sizes.get('feature', 0))} "
        f"features that fire at least {param(results, 'min_fires')} times; the others are excluded. Mean "
        f"persistence of the included features: {f.num(float(fp['persistence'].where(inc).mean()))}."))
    if sm is None:
        return sec.add(_missing_note(results, ["sae_matched"], "Variance-matched SAE results"))
    sec.add(Paragraph(
        "Spearman's ρ of subspace fraction (the share of a feature's decoder vector inside the span of the probe "
        f"vectors) against residual firing persistence: **{f.rho(_v(sm, 'rho'))}** ("
        f"{f.p_is(_v(sm, 'p'))}, n = {f.count(_v(sm, 'n'))})."))
    sec.add(_tests_table(sm, "features", "tbl-sae-tests", prefix="residual_"))
    _add(sec, _figure(figures, "fig-sae",
         "Residual firing persistence of SAE features (persistence minus the "
         f"{param(results, 'match_stat')} of the {param(results, 'n_matched')} included features nearest in variance "
         "explained) against the fraction of the feature's decoder vector inside the span of the probe vectors "
         "(equivalent of the study's Figure 7)."))
    return sec


_PAIR_NAMES = {"subspace_fraction": "subspace fraction", "self_rating": "self rating", "text_rating": "text rating",
               "residual": "residual persistence", "variance_explained": "variance explained"}


def _residual_note(ra):
    """Why the residual correlations have a smaller n: only included (often firing) features have a residual."""
    if "residual_skipped" in ra.attrs:
        return f"; the residual correlations could not be computed ({ra.attrs['residual_skipped']})"
    if "residual" not in ra:
        return ""
    n_res = int(np.isfinite(ra["residual"].values).sum())
    n_rated = ra.sizes.get("feature", 0)
    if n_res == n_rated:
        return ""
    return (f"; only the {f.count(n_res)} rated features included in the firing-persistence analysis (enough "
            f"fires) have a residual, so the residual correlations use n = {f.count(n_res)}")


def _sec_ratings(results, figures):
    sec = Section("Self-evaluated and text-evaluated emotionality", label="sec-ratings")
    ra = _ds(results, "ratings")
    if ra is None:
        return sec.add(_missing_note(results, ["ratings"], "Rating results"))
    rows = []
    for i in range(ra.sizes["pair"]):
        r = ra.isel(pair=i)
        x, y = str(r["x"].values), str(r["y"].values)
        rows.append([f"{_PAIR_NAMES.get(x, literal(x))} vs {_PAIR_NAMES.get(y, literal(y))}",
                     f.rho(r["rho"]), f.pval(f.scalar(r["p"])), f.count(f.scalar(r["n"]))])
    sec.add(Paragraph(
        f"{f.count(ra.sizes.get('feature', 0))} SAE features are rated. The residual persistence here subtracts the "
        f"{param(results, 'rating_stat')} of the {param(results, 'n_matched')} features nearest in variance explained "
        "(as the study's Figure 10)" + _residual_note(ra) + "."))
    sec.add(Table(["correlation", "Spearman ρ", "p", "n"], rows,
                  "Spearman correlations of the ratings (average ranks for ties; pairs with NaN dropped).",
                  label="tbl-ratings", align="lrrr"))
    _add(sec, _figure(figures, "fig-ratings",
         "Subspace fraction of the rated SAE features against the model's agentic self-evaluation (left) and its "
         "textual evaluation (right) of the feature's emotionality (equivalent of the study's Figure 8)."))
    _add(sec, _figure(figures, "fig-residual-ratings",
         "Residual firing persistence of the rated SAE features against the self-evaluation (left) and the "
         "textual evaluation (right) (equivalent of the study's Figure 10)."))
    return sec


def _sec_mentions(results, figures):
    sec = Section("Emotion words in the self-evaluation transcripts", label="sec-mentions")
    me = _ds(results, "mentions")
    if me is None:
        return sec.add(_missing_note(results, ["mentions"], "Mention-test results"))
    alpha = param(results, "alpha")
    tested = me["tested"].astype(bool)
    sec.add(Paragraph(
        f"{f.frac(_v(me, 'n_significant'), _v(me, 'n_tested'))} emotions named in at least "
        f"{param(results, 'min_mentions')} rated features' transcripts have a significant association (BH-FDR "
        f"q ≤ {alpha}); {f.count(_v(me, 'n_positive'))} have a positive effect (features whose transcript names "
        "the emotion have a higher mean cosine with its probe)." + _floor_note(me)))
    top = me.where(tested, drop=True)
    top = top.sortby([top["p"], -top["effect"]])  # ties at the permutation floor: largest effect first
    top = top.isel(emotion=slice(0, min(10, top.sizes["emotion"])))
    rows = [[literal(str(top["emotion"].values[i])), f.count(f.scalar(top["n_mentions"][i])),
             f.signed(f.scalar(top["effect"][i])), f.pval(f.scalar(top["p"][i])), f.pval(f.scalar(top["q"][i]))]
            for i in range(top.sizes["emotion"])]
    if rows:
        sec.add(Table(["emotion", "mentions", "effect (Δ mean cosine)", "p", "q (BH)"], rows,
                      "The tested emotions with the smallest permutation p-values.", label="tbl-mentions",
                      align="lrrrr"))
    _add(sec, _figure(figures, "fig-mentions",
         "Effect (difference in mean cosine with the emotion's probe between features whose self-evaluation "
         "transcript names the emotion and the other features) against significance for each emotion tested "
         "(one-sided permutation test, BH-FDR; equivalent of the study's Figure 9). The emotions with the "
         "smallest p-values are named in @tbl-mentions."))
    return sec


def _floor_note(me):
    """A sentence on the emotions whose sampled p sits at the permutation floor 1/(n_perm + 1), if any."""
    n_perm = me.attrs.get("n_perm")
    if not n_perm:
        return ""
    floor = 1.0 / (int(n_perm) + 1)
    sampled = me["tested"].values.astype(bool) & ~me["exact"].values.astype(bool)
    at_floor = int((sampled & (me["p"].values <= floor * (1 + 1e-9))).sum())
    if not at_floor:
        return ""
    return (f" With {f.count(int(n_perm))} permutations the smallest attainable p is 1/({f.count(int(n_perm))} + 1) "
            f"= {f.pval(floor)}; {f.count(at_floor)} emotions reach it, so p does not order them in @tbl-mentions "
            "or in the figure (more permutations would separate them).")


#: (builder, result steps it reads), in report order
SECTIONS = [_sec_summary, _sec_persistence, _sec_random, _sec_matched, _sec_pcs, _sec_steering, _sec_sae,
            _sec_ratings, _sec_mentions]


def with_summary(results):
    """The results with a ``summary`` group: the one of the run, else computed here from the groups present
    (a preset without the summary step); the computed one is marked ``computed_by = "report"``."""
    import xarray as xr

    from ..pipeline.summary import summary_table

    if "summary" in results.children or not results.children:
        return results
    groups = {name: results[name].to_dataset(inherit=False) for name in results.children}
    params = {"lag": param(results, "lag"), "alpha": param(results, "alpha", _ALPHA)}
    skipped = {k[len("skipped_"):]: v for k, v in results.attrs.items() if k.startswith("skipped_")}
    ds = summary_table(groups, params, skipped=skipped)
    ds.attrs["computed_by"] = "report"
    out = results.copy()
    out["summary"] = xr.DataTree(ds)
    return out


def build_document(results, figures):
    """The :class:`~emostats.report.model.Document` of a results tree and its drawn figures."""
    results = with_summary(results)
    a = results.attrs
    title = "Persistence of emotion features"
    model = a.get("study_model")
    subtitle = f"emostats report on {a.get('input_files') or 'a study'}"
    if model:  # a local file path names the model by its file name (the provenance keeps the path);
        # a hub id such as org/name stays whole
        name = str(model).replace("\\", "/").rstrip("/")
        if name.startswith(("/", "~", ".")) or name[1:3] == ":/":
            name = name.rsplit("/", 1)[-1]
        subtitle += f" (model: {name or model})"
    doc = Document(title, subtitle=subtitle, date=str(a.get("report_created", ""))[:10],
                   keywords=("emotion probes", "persistence", "sparse autoencoders"))
    ran = [s for s in STEPS if s in results.children]
    doc.lead.append(Paragraph(
        "This report reproduces the analyses of *Persistence and Introspection of Emotion Features* "
        f"(Sauers et al., 2026) on one study file: {len(ran)} of {len(STEPS)} analyses ran; a section whose "
        f"analysis did not run says why. Every number comes from `{command_of(results)}`; the methods "
        "and the provenance are at the end (@sec-methods, @sec-provenance)."))
    for builder in SECTIONS:
        doc.sections.append(builder(results, figures))
    doc.sections.append(methods_section(results))
    doc.sections.append(provenance_section(results))
    return doc
