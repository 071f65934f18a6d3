"""Every code reference in the README, the docs pages and the docstrings points to something that exists."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "benchmarks").glob("*.md")), ROOT / "extract" / "README.md"]
# a path of the repository written in backticks or as a link target: `emostats/io.py`, (docs/format.md)
PATH = re.compile(r"[`(]((?:emostats|extract|tests|benchmarks|docs|reports|\.ci)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
# a dotted name in backticks: `emostats.nullmodels.moments`
DOTTED = re.compile(r"`(emostats(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
# Sphinx roles in docstrings: :func:`emostats.x.y`, :mod:`~emostats.x`
ROLE = re.compile(r":(?:func|mod|class|meth|data|attr):`~?(emostats(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _path_exists(text: str) -> bool:
    path = ROOT / text.split("#")[0]
    return path.exists() or any(ROOT.glob(text)) if "*" in text else path.exists()


@pytest.mark.parametrize("page", [p for p in PAGES if p.exists()], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_references_exist(page):
    text = page.read_text()
    # a page may name the files of a worked example that it asks the reader to create:
    # <!-- example files: a/b.py c/d.py -->
    examples = {f for line in re.findall(r"<!-- example files: (.*?) -->", text) for f in line.split()}
    missing = [m for m in PATH.findall(text) if not _path_exists(m) and "_build" not in m and "_generated" not in m
               and m not in examples and not m.endswith("test_")]
    missing += [m for m in DOTTED.findall(text) if not _resolves(m)]
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {sorted(set(missing))}"


def _docstrings():
    for path in sorted((ROOT / "emostats").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield path, doc


def test_docstring_references_exist():
    missing = []
    for path, doc in _docstrings():
        for name in ROLE.findall(doc):
            if not _resolves(name):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
    assert not missing, "docstrings name what does not exist:\n" + "\n".join(sorted(set(missing)))
