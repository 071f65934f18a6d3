"""Blocks every report section uses: reading results, saying why something is missing, placing figures."""

import numpy as np

from ...pipeline import PRESETS as _PRESETS
from ...pipeline import preset_steps
from .. import _format as f
from ..model import Figure, Note, Table, literal

__all__ = ["ds_of", "value_of", "summary_value", "command_of", "missing_note", "figure_block", "add", "tests_table"]


def ds_of(results, name):
    """The Dataset of a results group, or None when the step did not run."""
    return results[name].to_dataset(inherit=False) if name in results.children else None


def value_of(ds, name, default=None):
    """A scalar from a dataset variable or attr (None when absent)."""
    if ds is None:
        return default
    if name in ds.variables and ds[name].size == 1:
        return f.scalar(ds[name])
    if name in ds.attrs:
        value = ds.attrs[name]
        return value.item() if hasattr(value, "item") and np.size(value) == 1 else value
    return default


def summary_value(results, row, column="value"):
    ds = ds_of(results, "summary")
    if ds is None or row not in ds["row"].values or not np.isfinite(float(ds["value"].sel(row=row))):
        return None  # the row's analysis did not run
    return f.scalar(ds[column].sel(row=row))


def command_of(results):
    """The command that wrote the results (``emostats run``, ``emostats persistence``, ...)."""
    return f"emostats {results.attrs.get('preset', 'run')}"


def missing_note(results, steps, what):
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


def figure_block(figures, name, caption, width=1.0):
    """The Figure block of ``name`` when it was drawn; else a Note saying why not."""
    value = figures.get(name)
    if isinstance(value, str):
        return Figure(value, caption, name, width)
    if isinstance(value, Exception):
        return Note(literal(f"The figure could not be drawn ({type(value).__name__}: {value})."),
                    title="Figure missing")
    return None


def add(section, *blocks):
    section.add(*[b for b in blocks if b is not None])
    return section


def tests_table(ds, what, label, prefix=""):
    """The one-sample tests of residuals against 0 (variables of variance_matched / sae_matched)."""
    g = lambda name: value_of(ds, prefix + name)  # noqa: E731
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
                 f"Residual persistence of the {what} against 0. These p-values and the t interval treat the "
                 f"{what} as independent, which they are not (they are measured on the same tokens and "
                 "conversations); the conversation-level interval and p of the mean residual are in @tbl-summary.",
                 label=label, align="lrrl")
