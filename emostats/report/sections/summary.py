"""The Summary section: the study's closing paragraph as a table and in words."""


from .. import _format as f
from ..methods import param
from ..model import Paragraph, Section, Table, literal
from . import section
from ._blocks import ds_of, missing_note, summary_value


@section("summary", rank=0)
def _sec_summary(results, figures):
    sec = Section("Summary", label="sec-summary")
    ds = ds_of(results, "summary")
    if ds is None:
        return sec.add(missing_note(results, ["summary"], "The summary numbers"))
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
    s = lambda row, col="value": summary_value(results, row, col)  # noqa: E731
    lag = param(results, "lag")
    out = []
    summary = ds_of(results, "summary")
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
