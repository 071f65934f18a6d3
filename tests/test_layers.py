"""The import graph of emostats, built from the source with ast: no cycle, and no import from a lower
layer to a higher one (kernels -> NumPy-level -> xarray wrappers -> files -> pipeline -> report/cli).

Every import counts, also those inside functions (lazy imports for start-up speed are still
dependencies). A new module must be given its layer in LAYERS below; the test says so.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "emostats"

#: (layer name, module prefixes), lowest first; a module's layer is that of its longest matching prefix
LAYERS = [
    ("foundation", ["_version", "errors", "defaults", "seeds", "_checks", "_results", "_atomic",
                    "_fileguard", "_progress", "_safetensors", "_nan"]),
    ("kernels", ["_kernels"]),
    ("numpy", ["_threads", "_lagstats", "segments", "stats", "_chunks"]),
    ("xarray", ["persistence", "decay", "sae", "geometry", "ratings", "steering", "nullmodels", "affect",
                "inference", "probe_check", "repetition", "validation", "_validate_groups", "_validate_values",
                "_join", "_cf",
                "persistence_stats", "decay_bootstrap",  # split out of persistence and decay by topic
                "feature_matching"]),  # split out of sae (Figure 7)
    ("files", ["io", "synth"]),
    ("pipeline", ["pipeline"]),
    ("interface", ["report", "plots", "cli", "__main__", ""]),  # "" = the package root emostats/__init__
]


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(module, node, is_package, mods):
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[:len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in mods else prefix for a in node.names]


def import_graph():
    """module -> the emostats modules it imports (the module itself and its parents excluded)."""
    mods = _modules()
    graph = {}
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # imports under `if TYPE_CHECKING:` are for annotations only and never run
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
                node.body = []
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node, path.name == "__init__.py", mods):
                    while target not in mods and "." in target:  # `import emostats.x.y` names a module
                        target = target.rsplit(".", 1)[0]
                    if target in mods and target != module and target.startswith("emostats"):
                        deps.add(target)
        graph[module] = deps
    return graph


def layer_of(module):
    name = module.removeprefix("emostats").removeprefix(".")
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix and name.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


GRAPH = import_graph()


def test_every_module_has_a_layer():
    missing = sorted(m for m in GRAPH if layer_of(m) is None)
    assert not missing, f"give these modules a layer in tests/test_layers.py LAYERS: {missing}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = []
    for module, deps in GRAPH.items():
        here = layer_of(module)
        for dep in deps:
            there = layer_of(dep)
            if None not in (here, there) and there > here:
                upward.append(f"{module} ({LAYERS[here][0]}) imports {dep} ({LAYERS[there][0]})")
    assert not upward, "\n".join(sorted(upward))


def _cycle(graph):
    """One import cycle as a list of modules, or None (a package importing its own submodules is no cycle)."""
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if node.startswith(dep + ".") or dep.startswith(node + "."):
                continue  # a package and its submodules
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("emostats._kernels.lag") < layer_of("emostats.persistence") < layer_of("emostats.pipeline.engine")


@pytest.mark.parametrize("module", ["emostats.io", "emostats.validation"])
def test_io_does_not_import_the_pipeline(module):
    assert not any(dep.startswith("emostats.pipeline") for dep in GRAPH[module])
