"""The Summary section: the study's closing paragraph as a table and in words, with conversation-level inference.

The table shows, beside each number, its 95% interval from the conversation
bootstrap (``ci_low``/``ci_high`` of ``/summary``), the conversation-level p
(``p_cluster``), the placebo percentile and p (``placebo_pct``/``placebo_p``)
and the analysis' own p, which treats its items (probes, PCs, features) as
independent (``p_assumes``) and is labelled so. A cell without a value carries
a note number; the notes under the table give the reason (``inference_detail``),
each reason once. The figure shows each number against its placebo draws.
"""

import math
import re

from .. import _format as f
from ..figures import FigureSpec, register, result_group
from ..methods import param
from ..model import Paragraph, Section, Table, literal
from . import section
from ._blocks import ds_of, figure_block, missing_note, summary_value

__all__ = ["INFERENCE", "Notes", "detail_parts", "assumes_phrase", "interval_text", "placebo_text", "sup",
           "conversation_words", "p_words"]

#: the inference columns of ``/summary`` (issue 14)
INFERENCE = ("ci_low", "ci_high", "p_cluster", "placebo_pct", "placebo_p")
_SUP = str.maketrans("0123456789,", "⁰¹²³⁴⁵⁶⁷⁸⁹˒")
#: prefixes of the parts of ``inference_detail`` -> the column they explain
_PARTS = (("interval", "ci"), ("p_cluster", "p_cluster"), ("placebo", "placebo"), ("no placebo", "placebo"))
_NO_INFERENCE = ("these results have no conversation-level inference (no `ci_low`, `p_cluster`, `placebo_pct` in "
                 "`/summary`: they were computed before the bootstrap and placebo steps existed); `emostats run` "
                 "on the study adds them")


def _draw_placebo(results, plot):
    from matplotlib.figure import Figure as MplFigure

    from ...plots.placebo import figure_size, placebo_panels

    from ...inference import columns

    data = result_group(results, "placebo")
    fig = MplFigure(figsize=figure_size(max(1, len(placebo_panels(data)))))
    return plot(data, fig=fig, reported=dict(getattr(columns, "PLACEBO_KIND", {})))


register(FigureSpec("fig-placebo", ("placebo",), "placebo", "plot_placebo", _draw_placebo, "full"))


def sup(numbers):
    """Note numbers as superscript digits, e.g. ``[1, 3]`` -> ``"¹˒³"``.

    Examples
    --------
    >>> sup([1, 12]), sup([])
    ('¹˒¹²', '')
    """
    return ",".join(str(n) for n in numbers).translate(_SUP)


class Notes:
    """Numbered notes under a table: each distinct text gets one number, in order of first use."""

    def __init__(self):
        self.texts = {}

    def number(self, text):
        return self.texts.setdefault(text, len(self.texts) + 1)

    def mark(self, texts):
        return sup(sorted({self.number(t) for t in texts}))

    def paragraph(self, label):
        items = "; ".join(f"{sup([n])} {literal(t)}" for t, n in self.texts.items())
        return Paragraph(f"**Table notes** (@{label}): {items}.")


def detail_parts(text):
    """``inference_detail`` split by the column it explains: dict ``ci``/``p_cluster``/``placebo``/``all`` -> texts.

    A part starts with ``interval``, ``p_cluster``, ``placebo`` or ``no placebo``;
    text before any such part applies to every column; text after ``; `` that
    starts with none of them continues the part before it.

    Examples
    --------
    >>> detail_parts("interval: x; p_cluster: y; its test is z; placebo: w")
    {'ci': ['interval: x'], 'p_cluster': ['p (conv.): y; its test is z'], 'placebo': ['placebo: w']}
    >>> detail_parts("steering samples are their own unit; BH-FDR is its inference")
    {'all': ['steering samples are their own unit; BH-FDR is its inference']}
    """
    out = {}
    last = None
    for piece in [p.strip() for p in str(text).split("; ") if p.strip()]:
        key = next((col for prefix, col in _PARTS if piece.startswith(prefix)), None)
        if key is None and last is not None:
            out[last[0]][last[1]] += "; " + piece
            continue
        key = key or "all"
        piece = re.sub(r"^p_cluster\b:?", lambda m: "p (conv.)" + (":" if m.group(0).endswith(":") else ""), piece)
        out.setdefault(key, []).append(piece)
        last = (key, len(out[key]) - 1)
    return out


def assumes_phrase(text):
    """``p_assumes`` as a phrase: "probes independent (t-test over probes)" -> "t-test over probes, assumes
    independent probes".

    Examples
    --------
    >>> assumes_phrase("PCs independent (Spearman p)")
    'Spearman p, assumes independent PCs'
    >>> assumes_phrase("")
    ''
    """
    text = str(text).strip()
    m = re.fullmatch(r"(.+?) independent \((.+)\)", text)
    if m:
        return f"{m.group(2)}, assumes independent {m.group(1)}"
    return f"assumes {text}" if text else ""


def _finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _fmt(kind):
    return {"count": f.count, "signed": f.signed, "rho": f.rho}.get(kind, f.num)


def interval_text(lo, hi, kind="mean"):
    """``"[lo, hi]"`` in the row's number format (``"–"`` when undefined).

    Examples
    --------
    >>> interval_text(-0.016, 0.131, "signed"), interval_text(float("nan"), 1.0)
    ('[−0.0160, +0.131]', '–')
    """
    if not (_finite(lo) and _finite(hi)):
        return "\u2013"
    fmt = _fmt(kind)
    return f"[{fmt(lo)}, {fmt(hi)}]"


def placebo_text(pct, p):
    """``"20 (0.41)"``: percentile among the placebo draws and the placebo p.

    Examples
    --------
    >>> placebo_text(20.25, 0.4129), placebo_text(float("nan"), float("nan"))
    ('20 (0.41)', '–')
    """
    if not _finite(pct):
        return "\u2013"
    return f"{pct:.0f} ({f.pval(p)})"


def _reason(text):
    """A reason without its column prefix (the note mark sits in the column already), so one reason
    shared by the interval and the conversation-level p is one note."""
    return re.sub(r"^(interval|p \(conv\.\)): ", "", text)


def _p_cluster_reason(results, row):
    """Why the conversation-level p of ``row`` is NaN when the statistic it tests has no value (from
    ``/bootstrap`` ``missing``)."""
    from ...inference.columns import ROW_SOURCES

    bs = ds_of(results, "bootstrap")
    test = ROW_SOURCES.get(row, (None, None))[1]
    if bs is None or test is None or "missing" not in bs or test not in [str(x) for x in bs["statistic"].values]:
        return []
    why = str(bs["missing"].sel(statistic=test).values)
    return [f"{test.replace('_', ' ')}: {why}"] if why else []


def _cell(ds, name, i):
    return f.scalar(ds[name].isel(row=i)) if name in ds else math.nan


@section("summary", "bootstrap", "placebo", rank=0)
def _sec_summary(results, figures):
    sec = Section("Summary", label="sec-summary")
    ds = ds_of(results, "summary")
    if ds is None:
        return sec.add(missing_note(results, ["summary"], "The summary numbers"))
    has_inference = all(c in ds for c in INFERENCE)
    notes = Notes()
    rows = []
    for i in range(ds.sizes["row"]):
        r = ds.isel(row=i)
        value = f.scalar(r["value"])
        kind = str(r["kind"].values)
        p = f.scalar(r["p"])
        assumes = str(r["p_assumes"].values) if "p_assumes" in ds else ""
        p_text = f.pval(p)
        if _finite(p) and assumes:
            p_text += notes.mark([f"p (items): {assumes_phrase(assumes)}"])
        if has_inference and _finite(value):
            parts = detail_parts(r["inference_detail"].values if "inference_detail" in ds else "")
            general = parts.get("all", [])
            if not _finite(_cell(ds, "p_cluster", i)):
                parts.setdefault("p_cluster", []).extend(_p_cluster_reason(results, str(ds["row"].values[i])))
            ci = interval_text(_cell(ds, "ci_low", i), _cell(ds, "ci_high", i), kind)
            pc = f.pval(_cell(ds, "p_cluster", i))
            pl = placebo_text(_cell(ds, "placebo_pct", i), _cell(ds, "placebo_p", i))
            ci += notes.mark(general + [_reason(t) for t in parts.get("ci", [])])
            pc += notes.mark(general + [_reason(t) for t in parts.get("p_cluster", [])])
            pl += notes.mark(general + parts.get("placebo", []))
        elif _finite(value):
            mark = notes.mark([_NO_INFERENCE])
            ci, pc, pl = "\u2013" + mark, "\u2013" + mark, "\u2013" + mark
        else:  # the row's analysis did not run: its detail says why
            ci = pc = pl = "\u2013"
        rows.append([literal(str(r["quantity"].values)), _fmt(kind)(value), ci, pc, pl, p_text,
                     f.count(r["n"]), literal(str(r["detail"].values)), literal(str(r["study"].values))])
    n_conv = ds.attrs.get("n_conversations")
    caption = ("The study's closing paragraph as a table: this study's numbers beside the published ones. "
               "**95% CI**: percentile interval over bootstrap resamples of whole conversations; **p (conv.)**: "
               "conversation-level test (the conversation is the unit); **placebo pct (p)**: the number's "
               "percentile among placebo draws (random probe sets or random spans through the same analysis) "
               "and the two-sided placebo p; **p (items)**: the analysis' own p, which treats its items "
               "(probes, PCs or features) as independent (see the note). A dash: the analysis did not run (its "
               "detail says why) or the column is undefined for the row (the note says why).")
    if _finite(n_conv):
        caption += f" {f.count(n_conv)} conversations."
    sec.add(Table(["quantity", "value", "95% CI", "p (conv.)", "placebo pct (p)", "p (items)", "n", "detail",
                   "in the study (Kimi K2.5)"], rows, caption, label="tbl-summary", align="lrrrrrrll",
                  widths=("1.5fr", "auto", "auto", "auto", "auto", "auto", "auto", "0.9fr", "1fr"),
                  breakable=True, small=True))
    if notes.texts:
        sec.add(notes.paragraph("tbl-summary"))
    sec.add(Paragraph(_closing_paragraph(results)))
    if "placebo" in results.children:
        fig = figure_block(figures, "fig-placebo", _placebo_caption(results))
        if fig is not None:
            sec.add(fig)
    else:
        note = missing_note(results, ["placebo"], "The placebo distributions (the figure of each number "
                                                  "against its placebo draws)")
        sec.add(note)
    return sec


def _placebo_caption(results):
    pl = results["placebo"]
    kinds = ", ".join(str(k) for k in pl["kind"].values) if "kind" in pl.coords else ""
    text = (f"Each number of @tbl-summary that has a placebo, against its placebo distribution: "
            f"{f.count(pl.attrs.get('n_draws'))} draws per kind of random probe set ({literal(kinds)}; same count and "
            "norms as the probes, put through the same PCA, variance matching and Spearman)")
    if "span_dimension" in pl.attrs:
        text += (f", and random {f.count(pl.attrs['span_dimension'])}-dimensional spans in place of the probe span "
                 "for the SAE subspace-fraction correlations")
    return text + (". The vertical line is this study's value; each panel prints its percentile among the draws "
                   "and the placebo p of each kind (\"reported\": the kind @tbl-summary gives).")


def conversation_words(results, row, kind="mean"):
    """The conversation-level inference of a summary row in words (empty when the row has none)."""
    ds = ds_of(results, "summary")
    if ds is None or row not in ds["row"].values or "ci_low" not in ds:
        return []
    r = ds.sel(row=row)
    out = []
    lo, hi = f.scalar(r["ci_low"]), f.scalar(r["ci_high"])
    if _finite(lo) and _finite(hi):
        out.append(f"95% CI {interval_text(lo, hi, kind)} over conversations")
    pc = f.scalar(r["p_cluster"])
    if _finite(pc):
        test = detail_parts(r["inference_detail"].values).get("p_cluster", [])
        what = next((t[len("p (conv.) tests "):] for t in test if t.startswith("p (conv.) tests ")), "")
        out.append(f"conversation-level {f.p_is(pc)}" + (f" for {literal(what)}" if what else ""))
    pct = f.scalar(r["placebo_pct"])
    if _finite(pct):
        out.append(f"percentile {pct:.0f} of the placebo draws, placebo {f.p_is(f.scalar(r['placebo_p']))}")
    return out


def p_words(results, row):
    """``"t-test over probes, assumes independent probes: p = …"`` (or ``"p = …"`` without ``p_assumes``)."""
    ds = ds_of(results, "summary")
    p = summary_value(results, row, "p")
    if p is None or not _finite(p):
        return None
    assumes = str(ds["p_assumes"].sel(row=row).values) if "p_assumes" in ds else ""
    phrase = assumes_phrase(assumes)
    return f"{phrase}: {f.p_is(p)}" if phrase else f.p_is(p)


def _with(parts):
    parts = [p for p in parts if p]
    return f" ({'; '.join(parts)})" if parts else ""


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
                f"token t and at t + {lag} of {f.num(s('probe_persistence'))}"
                f"{_with(conversation_words(results, 'probe_persistence'))}")
        if s("random_persistence") is not None:
            text += (f", compared to {f.num(s('random_persistence'))} for "
                     f"{f.count(s('random_persistence', 'n'))} random unit vectors in the same activation space"
                     f"{_with(conversation_words(results, 'random_persistence'))}")
        out.append(text + ".")
    if s("residual_mean") is not None:
        out.append(f"Each probe's persistence minus the {param(results, 'match_stat')} of its "
                   f"{param(results, 'n_matched')} variance-matched random directions averages "
                   f"{f.signed(s('residual_mean'))}"
                   + _with(conversation_words(results, "residual_mean", "signed") + [p_words(results, "residual_mean")])
                   + f"; {f.count(s('residual_positive'))} of {f.count(s('residual_positive', 'n'))} probes are "
                   f"positive{_with(conversation_words(results, 'residual_positive', 'count') + [p_words(results, 'residual_positive')])}.")
    if s("pc_spearman") is not None:
        out.append(f"The Spearman correlation of PC rank with the PCs' residual persistence is "
                   f"{f.rho(s('pc_spearman'))}"
                   f"{_with(conversation_words(results, 'pc_spearman', 'rho') + [p_words(results, 'pc_spearman')])}.")
    if s("steering_5") is not None:
        text = (f"Steering pulses make {f.count(s('steering_5'))} of {f.count(s('steering_5', 'n'))} emotions "
                f"BH-significant {int(s('steering_5', 'offset'))} tokens after the pulse")
        if s("steering_100") is not None:
            text += (f"; {f.count(s('steering_100'))} are still significant at offset "
                     f"{int(s('steering_100', 'offset'))}")
        out.append(text + ".")
    if s("sae_spearman") is not None:
        out.append(f"The overlap of SAE features with the emotion subspace correlates with their residual firing "
                   f"persistence (Spearman {f.rho(s('sae_spearman'))}, n = {f.count(s('sae_spearman', 'n'))}"
                   f"; {'; '.join(x for x in conversation_words(results, 'sae_spearman', 'rho') + [p_words(results, 'sae_spearman')] if x)}).")
    if s("self_rating_residual") is not None:
        out.append(f"The self-evaluated emotionality of SAE features correlates with their residual persistence "
                   f"(ρ = {f.rho(s('self_rating_residual'))}; "
                   f"{'; '.join(x for x in conversation_words(results, 'self_rating_residual', 'rho') + [p_words(results, 'self_rating_residual')] if x)}).")
    if not out:
        return "No analysis of the closing paragraph could run on this study (see the sections below)."
    return "In the words of the study's summary: " + " ".join(out)

