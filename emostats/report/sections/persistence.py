"""The section on the probes' lag persistence, trajectories and decay fits (steps persistence .. decay_profile)."""

import numpy as np

from .. import _format as f
from ..methods import param
from ..model import Paragraph, Section, Table, literal
from . import section
from ._blocks import add, ds_of, figure_block, missing_note, value_of
from ..figures import FigureSpec, figure, new_figure, register, result_group


def _draw_decay(results, plot):
    """Decay fits: the trajectories (left) and the mean lag profile on a log axis (right), as available."""
    panels = [(a, b, kw) for a, b, kw in (("trajectories", "decay", {}), ("profile", "decay_profile", {"log_x": True}))
              if a in results.children and b in results.children]
    fig = new_figure("pair" if len(panels) == 2 else "full")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (data, fit, kw) in zip(axes, panels):
        plot(result_group(results, data), result_group(results, fit), ax=ax, **kw)
    return fig


figure("fig-trajectories", ["trajectories"], "persistence", "plot_trajectories", "ax", ["trajectories"])
figure("fig-profile", ["profile"], "persistence", "plot_lag_profile", "ax", ["profile"])
register(FigureSpec("fig-decay", ("decay",), "persistence", "plot_decay_fit", _draw_decay, "pair"))



@section('persistence', 'profile', 'trajectories', 'decay', 'decay_profile')
def _sec_persistence(results, figures):
    sec = Section("Lag persistence of the emotion probes", label="sec-persistence")
    lag = param(results, "lag")
    per = ds_of(results, "persistence")
    if per is None:
        return sec.add(missing_note(results, ["persistence"], "Probe persistence results"))
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
        f"{f.count(value_of(per, 'n_pairs'))} valid pairs (t and t + {lag} in the same turn) pooled across "
        f"{f.count(per.attrs.get('n_segments'))} turns. " + summary))
    within = _within_paragraph(results)
    if within is not None:
        sec.add(within)
    defined = np.flatnonzero(finite)
    order = defined[np.argsort(-r.values[defined], kind="stable")]  # probes with an undefined r are not ranked
    k = min(5, order.size)
    names = r[r.dims[0]].values

    def listing(idx):
        return ", ".join(f"{literal(str(names[i]))} ({f.num(float(r.values[i]))})" for i in idx)

    if order.size > 2 * k:
        sec.add(Paragraph(f"Most persistent: {listing(order[:k])}. Least persistent: "
                          f"{listing(order[::-1][:k])}."))
    traj = ds_of(results, "trajectories")
    if traj is not None:
        add(sec, figure_block(figures, "fig-trajectories",
             "Trajectories of the emotion probes (equivalent of the study's Figure 2). Tokens are binned by their "
             "initial strength |z_t| (z = activation standardised over all tokens); each line is the mean of "
             "sign(z_t)·z_(t+τ) over the tokens of the bin whose τ-successor is in the same turn, computed per "
             f"probe and averaged over probes with equal weight, for τ = 0 to {param(results, 'max_lag')} tokens."))
    add(sec, figure_block(figures, "fig-profile",
         f"Lag profile: Pearson r between the activation at t and at t + L, pooled over valid pairs, for L = 0 to "
         f"{param(results, 'max_lag')} tokens; the line is the mean over probes, the band spans the 10th to 90th "
         "percentile of the probes."))
    decay, decay_p = ds_of(results, "decay"), ds_of(results, "decay_profile")
    if decay is None and decay_p is None:
        return sec.add(missing_note(results, ["decay", "decay_profile"], "Decay fits"))
    add(sec, figure_block(figures, "fig-decay",
         "Decay fits: a + b·2^(−τ/h_fast) + c·2^(−τ/h_slow) (or a single exponential when its AIC is lower), "
         "fitted by least squares to each trajectory of @fig-trajectories (left; points are the data, lines the "
         "fits) and to the lag profile averaged over probes (right, log lag axis, from L = 1). Half-lives h in "
         "tokens and tail levels a, with bootstrap intervals, are in @tbl-decay."))
    sec.add(_decay_table(decay, decay_p, results))
    return sec


def _boot_words(results, statistic, kind="mean"):
    """``"95% CI [a, b] over conversations"`` (and the conversation-level p where the statistic has a test)
    of a ``/bootstrap`` statistic, or an empty list."""
    from .summary import interval_text

    bs = ds_of(results, "bootstrap")
    if bs is None or statistic not in [str(x) for x in bs["statistic"].values]:
        return []
    b = bs.sel(statistic=statistic)
    out = []
    lo, hi = f.scalar(b["ci_low"]), f.scalar(b["ci_high"])
    if np.isfinite(lo) and np.isfinite(hi):
        out.append(f"95% CI {interval_text(lo, hi, kind)} over conversations")
    p = f.scalar(b["p_cluster"]) if "p_cluster" in b else float("nan")
    if np.isfinite(p):
        out.append(f"conversation-level {f.p_is(p)}")
    return out


def _within_paragraph(results):
    """Within-turn vs between-turn persistence (the ``within_turn`` step), with conversation intervals."""
    wt = ds_of(results, "within_turn")
    if wt is None or "mean_r_within" not in wt:
        return None

    def paren(parts):
        return f" ({'; '.join(parts)})" if parts else ""

    share = value_of(wt, "mean_between_share")
    text = (f"Within a turn (each turn centred on its own means over its valid pairs, so that the pooled "
            f"co-moments split exactly into within-turn and between-turn parts) the mean r of the probes is "
            f"**{f.num(value_of(wt, 'mean_r_within'))}**{paren(_boot_words(results, 'probe_within'))}, against "
            f"{f.num(value_of(wt, 'mean_r'))} pooled")
    if share is not None and np.isfinite(share):
        bs = ds_of(results, "bootstrap")
        ci = ""
        if bs is not None and "probe_between_share" in [str(x) for x in bs["statistic"].values]:
            lo, hi = (f.scalar(bs[k].sel(statistic="probe_between_share")) for k in ("ci_low", "ci_high"))
            if np.isfinite(lo) and np.isfinite(hi):
                ci = f" (95% CI {100 * lo:.0f}% to {100 * hi:.0f}% over conversations)"
        text += (f": {100 * share:.0f}% of the pooled mean r is between-turn level{ci}, that is turns differing "
                 f"in level rather than persistence within a turn")
    if "direction_mean_r_within_uniform" in wt:
        text += (f"; uniform random directions: {f.num(value_of(wt, 'direction_mean_r_within_uniform'))} within a "
                 f"turn against {f.num(value_of(wt, 'direction_mean_r_uniform'))} pooled")
    return Paragraph(text + ".")


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
