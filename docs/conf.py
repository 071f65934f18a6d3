"""Sphinx configuration of the emostats documentation.

Build (warnings are errors, as in CI)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The API reference page is generated at build time from ``emostats.__all__``, so
every public name is documented from its numpydoc docstring and none is forgotten.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("MPLBACKEND", "Agg")

import emostats  # noqa: E402

project = "emostats"
author = "the emostats developers"
copyright = "2026, the emostats developers"
release = emostats.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "examples", "**/.ipynb_checkpoints"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "alabaster"
html_static_path = ["_static"] if (HERE / "_static").is_dir() else []
suppress_warnings = ["myst.header"]
nitpicky = False


def _write_api_page(app):
    """docs/_generated/api.rst: one entry per name of ``emostats.__all__``."""
    import inspect

    out = HERE / "_generated"
    out.mkdir(exist_ok=True)
    lines = ["API reference", "=============", "",
             "Every public name of ``import emostats as es``, generated from ``emostats.__all__``.", ""]
    for name in sorted(emostats.__all__):
        if name.startswith("__"):
            continue
        obj = getattr(emostats, name)
        if inspect.isclass(obj):
            lines += [f".. autoclass:: emostats.{name}", "   :members:", ""]
        elif callable(obj):
            lines += [f".. autofunction:: emostats.{name}", ""]
        else:
            lines += [f".. autodata:: emostats.{name}", "   :annotation:", ""]
    text = "\n".join(lines)
    path = out / "api.rst"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def setup(app):
    app.connect("builder-inited", _write_api_page)
