"""Build the report's content model from a results tree (once; every writer renders it).

One section per analysis, in the order of the study's figures; a section whose
results are missing says what the study lacks. Numbers are read from the
results tree only, so the report of a results file matches the run exactly.
"""

import numpy as np

from ..run import STEPS
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
    if ds is None or row not in ds["row"].values:
        return None
    return f.scalar(ds[column].sel(row=row))


def _missing_note(results, steps, what):
    """A Note saying why the results of ``steps`` are missing."""
    reasons = [results.attrs.get(f"skipped_{s}") for s in steps]
    reasons = [r for r in reasons if r]
    if reasons:
        why = "; ".join(dict.fromkeys(reasons))
        text = f"{what} are missing: `emostats run` skipped this step because it {why}."
    else:
        text = f"{what} are missing: the results do not contain the {', '.join(steps)} step(s)."
    return Note(literal(text).replace("\\`", "`"), title="Not available")


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


def _stat(results, group, var):
    ds = _ds(results, group)
    return None if ds is None or var not in ds else ds[var]


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
        text = f.count(value) if kind == "count" else f.signed(value) if kind == "signed" else f.num(value)
        rows.append([literal(str(r["quantity"].values)), text, f.pval(r["p"]),
                     f.count(r["n"]), literal(str(r["detail"].values)), literal(str(r["study"].values))])
    sec.add(Table(["quantity", "value", "p", "n", "detail", "in the study (Kimi K2.5)"], rows,
                  "The study's closing paragraph as a table: this study's numbers beside the published ones. "
                  "Empty cells: the analysis did not run (see its section) or has no p-value.",
                  label="tbl-summary", align="lrrrll", widths=("1.6fr", "auto", "auto", "auto", "1fr", "1.2fr")))
    sec.add(Paragraph(_closing_paragraph(results)))
    return sec


def _closing_paragraph(results):
    """The study's closing paragraph, with this study's numbers (sentences for what ran)."""
    s = lambda row, col="value": _summary(results, row, col)  # noqa: E731
    lag = param(results, "lag")
    out = []
    n_conv = results.attrs.get("study_n_conversations")
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
                   f"{f.signed(s('residual_mean'))} (t-test p = {f.pval(s('residual_mean', 'p'))}, "
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
                   f"persistence (Spearman {f.signed(s('sae_spearman'))}, p = {f.pval(s('sae_spearman', 'p'))}, "
                   f"n = {f.count(s('sae_spearman', 'n'))}).")
    if s("self_rating_residual") is not None:
        out.append(f"The self-evaluated emotionality of SAE features correlates with their residual persistence "
                   f"(ρ = {f.signed(s('self_rating_residual'))}, p = {f.pval(s('self_rating_residual', 'p'))}).")
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
    sec.add(Paragraph(
        f"Pearson correlation of each probe's activation at token t with its activation at t + {lag}, over "
        f"{f.count(_v(per, 'n_pairs'))} valid pairs pooled across segments. Mean over the {f.count(r.size)} "
        f"probes: **{f.num(float(r.mean()))}** (median {f.num(float(r.median()))}, range {f.num(float(r.min()))} "
        f"to {f.num(float(r.max()))})."))
    top = r.sortby(r, ascending=False)
    k = min(5, r.size)
    probe_dim = r.dims[0]
    names = lambda da: ", ".join(f"{literal(str(n))} ({f.num(float(v))})"  # noqa: E731
                                 for n, v in zip(da[probe_dim].values, da.values))
    sec.add(Paragraph(f"Most persistent: {names(top[:k])}. Least persistent: {names(top[-k:][::-1])}."))
    traj = _ds(results, "trajectories")
    if traj is not None:
        _add(sec, _figure(figures, "fig-trajectories",
             "Trajectories of the emotion probes (equivalent of the study's Figure 2). Tokens are binned by the "
             "initial strength |z_t| (z = activation standardised over all tokens); each line is the mean of "
             "sign(z_t)·z_(t+τ) over the tokens of the bin whose τ-successor is in the same turn, computed per "
             f"probe and averaged over probes. τ runs from 0 to {param(results, 'max_lag')} tokens."))
    _add(sec, _figure(figures, "fig-profile",
         f"Lag profile: Pearson r between the activation at t and at t + L for L = 0 to "
         f"{param(results, 'max_lag')}, pooled over valid pairs; the line is the mean over probes, the band the "
         f"range between the 10th and 90th percentile of probes. The dashed line marks L = {lag}."))
    decay = _ds(results, "decay")
    if decay is not None:
        _add(sec, _figure(figures, "fig-decay",
             "Decay fits: a + b·exp(−τ/τ_fast) + c·exp(−τ/τ_slow) (or one exponential when its AIC is lower) "
             "fitted to each trajectory; half-lives and tail levels in the table below."))
        table = _decay_table(decay)
        if table is not None:
            sec.add(table)
    else:
        sec.add(_missing_note(results, ["decay"], "Decay fits"))
    return sec


def _decay_table(decay):
    """A table of half-lives and tail level per fitted curve (whatever dims fit_decay returned)."""
    wanted = [v for v in ("half_life_fast", "half_life_slow", "tail", "n_components", "aic") if v in decay]
    if not wanted:
        return None
    curve_dims = [d for d in decay[wanted[0]].dims]
    if len(curve_dims) > 1:
        return None
    labels = [str(x) for x in decay[curve_dims[0]].values] if curve_dims else ["fit"]
    rows = []
    for i, label in enumerate(labels):
        row = [literal(label)]
        for v in wanted:
            da = decay[v]
            value = f.scalar(da.isel({curve_dims[0]: i}) if curve_dims else da)
            text = f.num(value)
            lo, hi = f"{v}_low", f"{v}_high"
            if lo in decay and hi in decay:
                sel = (lambda x: x.isel({curve_dims[0]: i}) if curve_dims else x)  # noqa: E731
                text += f" [{f.num(f.scalar(sel(decay[lo])))}, {f.num(f.scalar(sel(decay[hi])))}]"
            row.append(text)
        rows.append(row)
    heads = [decay[v].attrs.get("long_name", v) for v in wanted]
    return Table(["curve", *[literal(h) for h in heads]], rows,
                 "Decay fits: half-lives in tokens and tail level, with bootstrap intervals over conversations "
                 "in brackets.", label="tbl-decay", align="l" + "r" * len(wanted))


def _sec_random(results, figures):
    sec = Section("Emotion probes against random directions", label="sec-random")
    rnd = _ds(results, "random_directions")
    per = _ds(results, "persistence")
    if rnd is None or per is None:
        return sec.add(_missing_note(results, ["random_directions"], "Random-direction results"))
    sphere = rnd["r"]
    if "k" in rnd and "sphere" in rnd.variables:
        sphere = rnd["r"].where(rnd["sphere"].astype(bool), drop=True)
    sec.add(Paragraph(
        f"Mean lag persistence of {f.count(sphere.size)} random unit directions uniform on the sphere of the "
        f"hidden space: **{f.num(float(sphere.mean()))}**; of the probes: **{f.num(float(per['r'].mean()))}**."))
    _add(sec, _figure(figures, "fig-random",
         f"Lag persistence (r at L = {param(results, 'lag')}) of the emotion probes against random unit "
         "directions (equivalent of the study's Figure 3). Random directions are uniform on the sphere of the "
         "hidden space; their persistence is computed exactly from the lagged second moments of the activations "
         "(or from their dumped activations)."))
    return sec


def _sec_matched(results, figures):
    sec = Section("Residual persistence over variance-matched directions", label="sec-matched")
    vm = _ds(results, "variance_matched")
    if vm is None:
        return sec.add(_missing_note(results, ["variance_matched"], "Variance-matched results"))
    sec.add(Paragraph(
        f"Each probe is matched to the {param(results, 'n_matched')} candidate directions (uniform on top-k "
        f"eigenspaces of the covariance) nearest in variance explained; residual = probe persistence − "
        f"{param(results, 'match_stat')} persistence of its matches."))
    sec.add(_tests_table(vm, "probes", "tbl-matched-tests"))
    _add(sec, _figure(figures, "fig-residuals",
         "Residual persistence of the emotion probes above that of their variance-matched random directions "
         "(equivalent of the study's Figure 4)."))
    return sec


def _tests_table(ds, what, label):
    """A table of the one-sample tests of residuals against 0, from the analysis' variables."""
    rows = []
    n = _v(ds, "n")
    mean = _v(ds, "mean_residual", _v(ds, "mean"))
    pos = _v(ds, "n_positive")
    if mean is not None:
        rows.append(["mean residual", f.signed(mean), "", f.count(n) if n is not None else ""])
    if pos is not None:
        rows.append([f"{what} with positive residual", f.count(pos), "", f.count(n) if n is not None else ""])
    for test in ("t", "wilcoxon", "sign"):
        stat = _v(ds, f"{test}_statistic", _v(ds, f"statistic_{test}"))
        p = _v(ds, f"{test}_p", _v(ds, f"p_{test}"))
        if p is not None:
            names = {"t": "t-test", "wilcoxon": "Wilcoxon signed-rank", "sign": "sign test"}
            rows.append([names[test], f.num(stat), f.pval(p), ""])
    for row in rows:
        if row[2] == "" and len(row) == 4:
            pass
    return Table(["statistic", "value", "p", "n"], rows or [["(no tests in the results)", "", "", ""]],
                 f"Residual persistence of the {what} against 0.", label=label, align="lrrr")


def _sec_pcs(results, figures):
    sec = Section("Principal components of the emotion space", label="sec-pcs")
    pcs = _ds(results, "emotion_pcs")
    if pcs is None:
        return sec.add(_missing_note(results, ["emotion_pcs"], "Emotion-space PC results"))
    rho = _summary(results, "pc_spearman")
    if rho is not None:
        sec.add(Paragraph(
            f"Spearman's ρ of PC rank (1 = most variance) against residual persistence: "
            f"**{f.signed(rho)}** (p = {f.pval(_summary(results, 'pc_spearman', 'p'))}, n = "
            f"{f.count(_summary(results, 'pc_spearman', 'n'))}). A negative ρ means the leading, less noisy PCs "
            "are the more persistent ones, as the study found."))
    _add(sec, _figure(figures, "fig-pcs",
         "Residual persistence of each principal component of the probe activations against its rank "
         "(equivalent of the study's Figure 5). Each PC's direction in hidden space is its combination of probe "
         "vectors; its residual is its persistence minus that of its variance-matched random directions."))
    return sec


def _sec_steering(results, figures):
    sec = Section("Causal effect of steering", label="sec-steering")
    st = _ds(results, "steering")
    if st is None:
        return sec.add(_missing_note(results, ["steering"], "Steering results"))
    alpha = param(results, "alpha")
    n_em = st.sizes.get("emotion", 0)
    rows = []
    offsets = st["offset"].values
    show = [o for o in (0, 1, 2, 5, 10, 20, 50, 100, 150, 199) if o in offsets] or list(offsets[:8])
    for o in show:
        sel = st.sel(offset=o)
        npers, nanti = int(sel["n_persistent"]), int(sel["n_antipersistent"])
        rows.append([str(int(o)), f.frac(npers, n_em), f.frac(nanti, n_em),
                     f.signed(float(sel["z"].mean()))])
    sec.add(Paragraph(
        f"For each of the {n_em} steered emotions and each token offset after the pulse, a z-score of the "
        f"contrast (the steered emotion's activation − the mean of the other probes) between steered and baseline "
        f"samples; BH-FDR across emotions at each offset, significant when q ≤ {alpha}."))
    sec.add(Table(["offset (tokens)", "persistent (z > 0)", "anti-persistent (z < 0)", "mean z"], rows,
                  f"Emotions with a significant steering effect (BH-FDR q ≤ {alpha}) at selected offsets.",
                  label="tbl-steering", align="rrrr"))
    _add(sec, _figure(figures, "fig-steering",
         "Causal effect (z-score) of a steering pulse on each emotion probe across the tokens after the pulse "
         "(equivalent of the study's Figure 6). Top: numbers of emotions BH-FDR significantly persistent (red) "
         "and anti-persistent (blue) at each offset."))
    return sec


def _sec_sae(results, figures):
    sec = Section("SAE features and the emotion subspace", label="sec-sae")
    fp = _ds(results, "sae_persistence")
    sm = _ds(results, "sae_matched")
    if fp is None:
        return sec.add(_missing_note(results, ["sae_persistence"], "SAE firing-persistence results"))
    lag = param(results, "lag")
    if "included" in fp:
        inc = int(fp["included"].sum())
        sec.add(Paragraph(
            f"Firing persistence P(fires at t + {lag} | fires at t) − P(fires at t + {lag} | not at t) for "
            f"{f.frac(inc, fp.sizes.get('feature', 0))} features; the others fire fewer than "
            f"{param(results, 'min_fires')} times and are excluded. Mean persistence of the included features: "
            f"{f.num(float(fp['persistence'].where(fp['included'].astype(bool)).mean()))}."))
    if sm is None:
        return sec.add(_missing_note(results, ["sae_matched"], "Variance-matched SAE results"))
    rho = _summary(results, "sae_spearman")
    if rho is not None:
        sec.add(Paragraph(
            f"Spearman's ρ of subspace fraction against residual firing persistence: **{f.signed(rho)}** "
            f"(p = {f.pval(_summary(results, 'sae_spearman', 'p'))}, n = "
            f"{f.count(_summary(results, 'sae_spearman', 'n'))})."))
    _add(sec, _figure(figures, "fig-sae",
         "Residual firing persistence of SAE features (persistence minus the "
         f"{param(results, 'match_stat')} of the {param(results, 'n_matched')} features nearest in variance "
         "explained) against the fraction of the feature's decoder vector inside the span of the probe vectors "
         "(equivalent of the study's Figure 7)."))
    return sec


def _sec_ratings(results, figures):
    sec = Section("Self-evaluated and text-evaluated emotionality", label="sec-ratings")
    ra = _ds(results, "ratings")
    if ra is None:
        return sec.add(_missing_note(results, ["ratings"], "Rating results"))
    rows = []
    if "rho" in ra and ra["rho"].ndim == 1:
        dim = ra["rho"].dims[0]
        for i in range(ra.sizes[dim]):
            r = ra.isel({dim: i})
            label = str(r["label"].values) if "label" in r else str(r[dim].values)
            rows.append([literal(label), f.signed(f.scalar(r["rho"])), f.pval(f.scalar(r["p"])),
                         f.count(f.scalar(r["n"]))])
    if rows:
        sec.add(Table(["correlation", "Spearman ρ", "p", "n"], rows,
                      "Spearman correlations of the ratings (NaN dropped pairwise).", label="tbl-ratings",
                      align="lrrr"))
    _add(sec, _figure(figures, "fig-ratings",
         "Subspace fraction of rated SAE features against the model's agentic self-evaluation (left) and its "
         "textual evaluation (right) of the feature's emotionality (equivalent of the study's Figure 8)."))
    _add(sec, _figure(figures, "fig-residual-ratings",
         "Residual firing persistence of rated SAE features (persistence minus the "
         f"{param(results, 'rating_stat')} of the {param(results, 'n_matched')} features nearest in variance "
         "explained) against the self-evaluation (left) and the textual evaluation (right) (equivalent of the "
         "study's Figure 10)."))
    return sec


def _sec_mentions(results, figures):
    sec = Section("Emotion words in the self-evaluation transcripts", label="sec-mentions")
    me = _ds(results, "mentions")
    if me is None:
        return sec.add(_missing_note(results, ["mentions"], "Mention-test results"))
    alpha = param(results, "alpha")
    dim = me["p"].dims[0]
    n_tested = int(np.isfinite(me["p"]).sum())
    sig = me["q"] <= alpha
    n_sig = int(sig.sum())
    n_pos = int((me["effect"] > 0).sum())
    sec.add(Paragraph(
        f"{f.frac(n_sig, n_tested)} emotions mentioned in at least {param(results, 'min_mentions')} transcripts "
        f"have a significant association (BH-FDR q ≤ {alpha}); {f.count(n_pos)} have a positive effect "
        "(features that mention the emotion have a higher cosine with its probe)."))
    top = me.sortby("p").isel({dim: slice(0, min(10, me.sizes[dim]))})
    rows = [[literal(str(top[dim].values[i])), f.signed(f.scalar(top["effect"][i])), f.pval(f.scalar(top["p"][i])),
             f.pval(f.scalar(top["q"][i]))] for i in range(top.sizes[dim])]
    sec.add(Table(["emotion", "effect (Δ mean cosine)", "p", "q (BH)"], rows,
                  "The emotions with the smallest permutation p-values.", label="tbl-mentions", align="lrrr"))
    _add(sec, _figure(figures, "fig-mentions",
         "Effect (difference in mean cosine with the emotion's probe between features whose self-evaluation "
         "transcript names the emotion and the others) against significance (−log10 p, one-sided permutation "
         "test) for each emotion tested (equivalent of the study's Figure 9)."))
    return sec


#: (builder, result steps it reads), in report order
SECTIONS = [_sec_summary, _sec_persistence, _sec_random, _sec_matched, _sec_pcs, _sec_steering, _sec_sae,
            _sec_ratings, _sec_mentions]


def build_document(results, figures):
    """The :class:`~emostats.report.model.Document` of a results tree and its drawn figures."""
    a = results.attrs
    title = "Persistence of emotion features"
    model = a.get("study_model")
    subtitle = f"emostats report on {a.get('input_files') or 'a study'}"
    if model:
        subtitle += f" (model: {model})"
    doc = Document(title, subtitle=subtitle, date=str(a.get("report_created", ""))[:10],
                   keywords=("emotion probes", "persistence", "sparse autoencoders"))
    ran = [s for s in STEPS if s in results.children]
    doc.lead.append(Paragraph(
        "This report reproduces the analyses of *Persistence and Introspection of Emotion Features* "
        f"(Sauers et al., 2026) on one study file: {len(ran)} of {len(STEPS)} analyses ran; a section whose "
        "analysis could not run says what the study lacks. Every number comes from `emostats run`; the methods "
        "and the provenance are at the end (@sec-methods, @sec-provenance)."))
    for builder in SECTIONS:
        doc.sections.append(builder(results, figures))
    doc.sections.append(methods_section(results))
    doc.sections.append(provenance_section(results))
    return doc
