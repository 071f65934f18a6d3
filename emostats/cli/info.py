"""``emostats info STUDY``: a readable summary of a study (sizes, groups, segments, provenance)."""

from ._common import add_study_argument, study_paths


def register(sub):
    p = sub.add_parser("info", help="summarise a study: sizes, groups, segments, provenance",
                       description="emostats info STUDY: a readable summary of a study (sizes, groups, "
                                   "segments, provenance).")
    add_study_argument(p)
    p.set_defaults(func=_main)


def summary_lines(tree):
    """Lines of the summary of a study tree (used by ``info`` and the report)."""
    import numpy as np

    from .._validate_values import show
    from ..segments import segments_of

    lines = []
    attrs = dict(tree.attrs)
    lines.append(f"format: emostats {show(attrs.get('emostats_format', '?'))}")
    for key in ("model", "layer", "source", "created", "synthetic"):
        if key in attrs:
            value = attrs[key]
            plain = isinstance(value, str) and value.isprintable() and len(value) < 200
            lines.append(f"{key}: {value if plain else show(value, 200)}")
    for node in tree.subtree:
        if node.path == "/":
            continue
        ds = node.to_dataset(inherit=False)
        dims = ", ".join(f"{d}={n:,}" for d, n in ds.sizes.items())
        lines.append(f"group {node.path}: {dims}")
        for name, var in ds.data_vars.items():
            lines.append(f"  {name}({', '.join(var.dims)}) {var.dtype}")
    if "tokens" in tree.children:
        tokens = tree["tokens"].to_dataset(inherit=False)
        offsets = segments_of(tokens)
        lengths = np.diff(offsets)
        n_conv = len(np.unique(np.asarray(tokens["conversation"].values)))
        if lengths.size:
            lines.append(f"segments: {lengths.size:,} turns in {n_conv:,} conversations; tokens per turn "
                         f"min {lengths.min():,}, median {int(np.median(lengths)):,}, max {lengths.max():,}")
    return lines


def _main(args):
    from ..io import open_study

    tree = open_study(study_paths(args))
    print("\n".join(summary_lines(tree)))
    return 0
