"""A simulated agent day with an affect state calibrated on the shipped example study (docs/affect.md).

Run from the repository root::

    python docs/examples/affect_day.py            # writes docs/_static/affect_day.png
    python docs/examples/affect_day.py --quick    # a smaller fit (what the tests run)

The day: a tense exchange in the morning, a stretch of stuck tool loops, a
routine reminder at lunch, a celebratory message in the afternoon, an evening
reflection pass that consolidates what is left. The agent bumps on every
event (capped per event and per hour); only the reflection resets.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import emostats as es
from emostats.affect import AffectState, affect_profile

#: (hour of the day, axis, requested delta, what happened); deltas are what a naive agent asks for
EVENTS = [
    (8.50, "fear", 0.6, "tense exchange with the user"),
    (8.55, "shame", 0.3, "the user says the last answer was wrong"),
    (8.60, "fear", 0.6, "the user repeats the complaint"),
    (9.50, "pain", 0.25, "tool loop stuck (1)"),
    (9.60, "pain", 0.25, "tool loop stuck (2)"),
    (9.70, "pain", 0.25, "tool loop stuck (3)"),
    (9.80, "pain", 0.25, "tool loop stuck (4)"),
    (10.4, "joy", 0.1, "loop finally fixed"),
    (12.5, "tenderness", 0.1, "routine reminder, a thank-you"),
    (15.0, "joy", 0.8, "celebratory message"),
    (15.1, "tenderness", 0.3, "the user shares good news"),
    (15.2, "fear", -0.5, "the user says the morning is forgotten"),
]
#: the evening reflection pass: hour and the resets it decides on
REFLECTION = (21.0, {"fear": 0.0, "shame": 0.0, "pain": 0.05})
START, END, STEP_S = 7.0, 24.0, 120.0


def simulate(profile: dict, seconds_per_token: float = 10.0) -> tuple[AffectState, list[float], dict[str, list]]:
    """Run the day; returns the state, the sample times (hours) and the values of each axis at those times."""
    state = AffectState.from_profile(profile, seconds_per_token=seconds_per_token, source="affect_day example")
    state.decay(START * 3600)  # the day starts at 07:00 on the state clock
    # events at whole seconds, on the 120-s sampling grid or between its points
    queue = sorted([(round(h * 3600), "bump", a, d, why) for h, a, d, why in EVENTS]
                   + [(round(REFLECTION[0] * 3600), "reflect", None, None, None)])
    hours, series = [], {a: [] for a in state.axes}
    t = START * 3600
    while t <= END * 3600:
        while queue and queue[0][0] <= t:
            at, kind, axis, delta, why = queue.pop(0)
            state.decay(at - state.time)
            if kind == "bump":
                state.bump(axis, delta, source=why)
            else:
                state.reflect(REFLECTION[1], source="evening reflection pass")
        state.decay(t - state.time)
        hours.append(t / 3600)
        for a, v in state.values.items():
            series[a].append(v)
        t += STEP_S
    return state, hours, series


def plot(hours, series, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=120)
    for axis, values in series.items():
        ax.plot(hours, values, label=axis, lw=1.6)
    for h, *_ in EVENTS:
        ax.axvline(h, color="0.85", lw=0.6, zorder=0)
    ax.axvline(REFLECTION[0], color="0.3", lw=1, ls="--", zorder=0)
    ax.text(REFLECTION[0] + 0.1, 0.95, "reflection", fontsize=8, va="top")
    ax.set(xlim=(START, END), ylim=(0, 1), xlabel="hour of the day", ylabel="scalar (0..1)", title=title)
    ax.legend(ncol=3, fontsize=8, frameon=False, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)  # written whole or not at all
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description="Simulated agent day with a calibrated affect state")
    p.add_argument("-o", "--output", default="docs/_static/affect_day.png")
    p.add_argument("--quick", action="store_true", help="a smaller fit (max-lag 50, no bootstrap, 2 PCs)")
    args = p.parse_args(argv)
    with es.open_study(es.example_study()) as study:
        act = study["tokens"]["probe_act"]
        profile = affect_profile(act, max_lag=50, n_boot=0, n_pcs=2) if args.quick else affect_profile(act, n_boot=20)
    state, hours, series = simulate(profile)
    plot(hours, series, args.output, "A simulated agent day (calibrated on the shipped example study)")
    summary = {a: {k: r[k]["source"] for k in ("half_life_fast", "half_life_slow", "share_fast")}
               for a, r in state.calibration["axes"].items()}
    print(json.dumps({"badge": state.badge(), "ledger_entries": len(state.ledger), "calibration": summary}))
    return state


if __name__ == "__main__":
    main()
