"""Probe names with markup characters reach the PDF and the .qmd unchanged (issue 12)."""

import re

import pytest

from emostats.report import write_qmd, write_typst
from emostats.report.model import literal

NAMES = ['say "hi"', "#1 tag", "$x$ cost", "*bold* name", "<b>html</b>", "@ref-like", "a_b [l](u) ~ ^ |",
         "back\\slash `tick`"]


@pytest.mark.parametrize("name", NAMES)
def test_typst_shows_the_name_as_is(name, tmp_path):
    typst = pytest.importorskip("typst")
    pypdf = pytest.importorskip("pypdf")
    source = tmp_path / "n.typ"
    source.write_text(f"#set page(width: 40cm, height: auto)\nprobe: {write_typst.inline(literal(name))} end\n")
    pdf = tmp_path / "n.pdf"
    typst.compile(str(source), output=str(pdf))
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(pdf).pages)
    assert " ".join(f"probe: {name} end".split()) in " ".join(text.split())


@pytest.mark.parametrize("name", NAMES)
def test_qmd_escapes_every_markup_character(name):
    md = write_qmd.inline(literal(name))
    # every markdown-significant character is backslash-escaped; removing the escapes gives the name back
    assert re.sub(r"\\(.)", r"\1", md) == name
    bare = re.sub(r"\\.", "", md)
    assert not re.search(r"[`*_\[\]<>#$@|~^\"]", bare), md
