"""The sections on the ratings and on the emotion words of the evaluation transcripts."""

import numpy as np

from .. import _format as f
from ..methods import param
from ..model import Paragraph, Section, Table, literal
from ..figures import figure
from . import section
from ._blocks import add, ds_of, figure_block, missing_note, value_of

figure("fig-ratings", ["ratings"], "ratings", "plot_ratings", "fig", ["ratings"], size="pair")
figure("fig-mentions", ["mentions"], "ratings", "plot_mention_volcano", "ax", ["mentions"], n_labels=0)
figure("fig-residual-ratings", ["ratings"], "ratings", "plot_residual_vs_ratings", "fig", ["ratings"], size="pair")


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



def _calibration_text(results):
    """A sentence on the judge's calibration check (``judge_calibration`` step), or None."""
    ca = ds_of(results, "judge_calibration")
    if ca is None or "calibration_auc" not in ca:
        return None
    judge = ca.attrs.get("judge_model", "the judge")
    n = ""
    if "n_emotional" in ca and "n_neutral" in ca:
        n = f" of {f.count(value_of(ca, 'n_emotional'))} emotional and {f.count(value_of(ca, 'n_neutral'))} neutral texts"
    text = (f"Before rating, the judge ({literal(str(judge))}) rated a labelled calibration set{n}: "
            f"AUC {f.num(value_of(ca, 'calibration_auc'))}, Spearman {f.rho(value_of(ca, 'calibration_spearman'))}")
    if "calibration_threshold" in ca.attrs:
        text += f" (the ratings are written only at AUC ≥ {f.num(float(ca.attrs['calibration_threshold']))})"
    passed = value_of(ca, "calibration_passed") if "calibration_passed" in ca else None
    if passed is not None and not passed:
        reason = ca.attrs.get("no_ratings_reason")
        text += ". It failed, so the study holds no ratings" + (f" ({literal(str(reason))})" if reason else "")
    return text + "."


@section('ratings')
def _sec_ratings(results, figures):
    sec = Section("Self-evaluated and text-evaluated emotionality", label="sec-ratings")
    ra = ds_of(results, "ratings")
    calibration = _calibration_text(results)
    if ra is None:
        if calibration:
            sec.add(Paragraph(calibration))
        return sec.add(missing_note(results, ["ratings"], "Rating results"))
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
    if calibration:
        sec.add(Paragraph(calibration))
    sec.add(Table(["correlation", "Spearman ρ", "p", "n"], rows,
                  "Spearman correlations of the ratings (average ranks for ties; pairs with NaN dropped). The p "
                  "treats the rated features as independent; conversation-level intervals and p of the "
                  "correlations with residual persistence are in @tbl-summary.",
                  label="tbl-ratings", align="lrrr"))
    add(sec, figure_block(figures, "fig-ratings",
         "Subspace fraction of the rated SAE features against the model's agentic self-evaluation (left) and its "
         "textual evaluation (right) of the feature's emotionality (equivalent of the study's Figure 8)."))
    add(sec, figure_block(figures, "fig-residual-ratings",
         "Residual firing persistence of the rated SAE features against the self-evaluation (left) and the "
         "textual evaluation (right) (equivalent of the study's Figure 10)."))
    return sec


@section('mentions')
def _sec_mentions(results, figures):
    sec = Section("Emotion words in the self-evaluation transcripts", label="sec-mentions")
    me = ds_of(results, "mentions")
    if me is None:
        return sec.add(missing_note(results, ["mentions"], "Mention-test results"))
    alpha = param(results, "alpha")
    tested = me["tested"].astype(bool)
    sec.add(Paragraph(
        f"{f.frac(value_of(me, 'n_significant'), value_of(me, 'n_tested'))} emotions named in at least "
        f"{param(results, 'min_mentions')} rated features' transcripts have a significant association (BH-FDR "
        f"q ≤ {alpha}); {f.count(value_of(me, 'n_positive'))} have a positive effect (features whose transcript names "
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
    add(sec, figure_block(figures, "fig-mentions",
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
