"""The null-model sections: random directions, variance-matched residuals, emotion-space PCs."""


from .. import _format as f
from ..methods import param
from ..model import Note, Paragraph, Section, literal
from . import section
from ._blocks import add, ds_of, figure_block, missing_note, tests_table, value_of
from .summary import conversation_words, p_words
from ..figures import figure

figure("fig-random", ["persistence", "random_directions"], "nullmodels", "plot_random_vs_probes", "ax",
       ["persistence", "random_directions"])
figure("fig-residuals", ["variance_matched"], "nullmodels", "plot_residuals", "ax", ["variance_matched"])
figure("fig-pcs", ["emotion_pcs"], "nullmodels", "plot_pc_residuals", "ax", ["emotion_pcs"])



@section('random_directions')
def _sec_random(results, figures):
    sec = Section("Emotion probes against random directions", label="sec-random")
    rnd = ds_of(results, "random_directions")
    per = ds_of(results, "persistence")
    if rnd is None or per is None:
        return sec.add(missing_note(results, ["random_directions", "persistence"], "Random-direction results"))
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
    add(sec, figure_block(figures, "fig-random",
         f"Lag persistence (r at L = {param(results, 'lag')}) of the emotion probes against random unit "
         "directions (equivalent of the study's Figure 3). The persistence of a random direction v is computed "
         "exactly from the lagged second moments of the activations, r = v'Cxy v / sqrt(v'Cxx v · v'Cyy v) "
         "(or from its dumped activations)."))
    return sec


@section('variance_matched', 'candidates')
def _sec_matched(results, figures):
    sec = Section("Residual persistence over variance-matched directions", label="sec-matched")
    vm = ds_of(results, "variance_matched")
    if vm is None:
        return sec.add(missing_note(results, ["variance_matched"], "Variance-matched results"))
    cand = ds_of(results, "candidates")
    n_cand = vm.attrs.get("n_candidates", cand.sizes.get("direction") if cand is not None else None)
    pop = ("uniform on the unit spheres of the top-k eigenspaces of the activation covariance"
           if cand is not None and cand.attrs.get("source") == "moments" else "the study's /random directions")
    sec.add(Paragraph(
        f"Each probe is matched to the {param(results, 'n_matched')} of {f.count(n_cand)} candidate directions "
        f"({literal(pop)}) nearest in variance explained; residual = probe persistence − "
        f"{param(results, 'match_stat')} persistence of its matches. Mean residual "
        f"**{f.signed(value_of(vm, 'mean'))}** ({'; '.join(conversation_words(results, 'residual_mean', 'signed') + [p_words(results, 'residual_mean') or 't-test over probes, assumes independent probes: ' + f.p_is(value_of(vm, 't_p'))])}), "
        f"{f.frac(value_of(vm, 'n_positive'), value_of(vm, 'n'))} probes positive."))
    sec.add(tests_table(vm, "probes", "tbl-matched-tests"))
    add(sec, figure_block(figures, "fig-residuals",
         "Residual persistence of each emotion probe above the "
         f"{param(results, 'match_stat')} of its {param(results, 'n_matched')} variance-matched random directions "
         "(equivalent of the study's Figure 4)."))
    return sec


@section('emotion_pcs')
def _sec_pcs(results, figures):
    sec = Section("Principal components of the emotion space", label="sec-pcs")
    pcs = ds_of(results, "emotion_pcs")
    if pcs is None:
        return sec.add(missing_note(results, ["emotion_pcs"], "Emotion-space PC results"))
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
        f"**{f.rho(value_of(pcs, 'rank_rho'))}** (n = {f.count(value_of(pcs, 'rank_n'))}; "
        f"{'; '.join(conversation_words(results, 'pc_spearman', 'rho') + [p_words(results, 'pc_spearman') or f.p_is(value_of(pcs, 'rank_p'))])}). "
        "A negative ρ means the leading, less noisy PCs are the more persistent ones, as the study found. Mean "
        f"residual {f.signed(value_of(pcs, 'residual_mean'))}, {f.frac(value_of(pcs, 'residual_n_positive'), value_of(pcs, 'residual_n'))} "
        "PCs positive."))
    add(sec, figure_block(figures, "fig-pcs",
         "Residual persistence of each principal component of the probe activations against its rank "
         "(equivalent of the study's Figure 5). A PC's direction in hidden space is its combination of probe "
         f"vectors; its residual is its persistence minus the {param(results, 'match_stat')} of its "
         f"{param(results, 'n_matched')} variance-matched random directions."))
    return sec
