"""The section on SAE features and the emotion subspace."""


from .. import _format as f
from ..methods import param
from ..model import Paragraph, Section
from . import section
from ._blocks import add, ds_of, figure_block, missing_note, tests_table, value_of
from .summary import conversation_words, p_words
from ..figures import figure

figure("fig-sae", ["sae_matched"], "sae", "plot_sae_residual_vs_subspace", "ax", ["sae_matched"])



@section('sae_persistence', 'sae_density', 'sae_matched')
def _sec_sae(results, figures):
    sec = Section("SAE features and the emotion subspace", label="sec-sae")
    fp = ds_of(results, "sae_persistence")
    sm = ds_of(results, "sae_matched")
    if fp is None:
        return sec.add(missing_note(results, ["sae_persistence"], "SAE firing-persistence results"))
    lag = param(results, "lag")
    inc = fp["included"].astype(bool)
    sec.add(Paragraph(
        f"Firing persistence P(fires at t + {lag} | fires at t) − P(fires at t + {lag} | does not fire at t) over "
        f"{f.count(value_of(fp, 'n_valid'))} valid t, for the {f.frac(int(inc.sum()), fp.sizes.get('feature', 0))} "
        f"features that fire at least {param(results, 'min_fires')} times; the others are excluded. Mean "
        f"persistence of the included features: {f.num(float(fp['persistence'].where(inc).mean()))}."))
    if sm is None:
        return sec.add(missing_note(results, ["sae_matched"], "Variance-matched SAE results"))
    sec.add(Paragraph(
        "Spearman's ρ of subspace fraction (the share of a feature's decoder vector inside the span of the probe "
        f"vectors) against residual firing persistence: **{f.rho(value_of(sm, 'rho'))}** (n = "
        f"{f.count(value_of(sm, 'n'))}; "
        f"{'; '.join(conversation_words(results, 'sae_spearman', 'rho') + [p_words(results, 'sae_spearman') or f.p_is(value_of(sm, 'p'))])})."))
    sec.add(tests_table(sm, "features", "tbl-sae-tests", prefix="residual_"))
    add(sec, figure_block(figures, "fig-sae",
         "Residual firing persistence of SAE features (persistence minus the "
         f"{param(results, 'match_stat')} of the {param(results, 'n_matched')} included features nearest in variance "
         "explained) against the fraction of the feature's decoder vector inside the span of the probe vectors "
         "(equivalent of the study's Figure 7)."))
    return sec
