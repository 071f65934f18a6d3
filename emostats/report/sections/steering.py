"""The section on the causal effect of steering."""


from .. import _format as f
from ..methods import param
from ..model import Paragraph, Section, Table
from . import section
from ._blocks import add, ds_of, figure_block, missing_note
from ..figures import figure

figure("fig-steering", ["steering"], "steering", "plot_steering", "fig", ["steering"], size="tall")



@section("steering", rank=6.5)  # the study's Figure 6, before the SAE figures (7-10)
def _sec_steering(results, figures):
    sec = Section("Causal effect of steering", label="sec-steering")
    st = ds_of(results, "steering")
    if st is None:
        return sec.add(missing_note(results, ["steering"], "Steering results"))
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
    add(sec, figure_block(figures, "fig-steering",
         "Causal effect (z-score) of a steering pulse on each emotion probe across the tokens after the pulse "
         "(equivalent of the study's Figure 6); rows are emotions, colour is z (red: elevated, blue: "
         "suppressed). Top panel: numbers of emotions BH-FDR significantly persistent (red) and anti-persistent "
         "(blue) at every fifth offset."))
    return sec
