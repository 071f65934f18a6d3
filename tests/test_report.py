"""Tests of the report: content model, qmd and Typst writers, PDF, figures, CLI."""

import re

import pytest
import xarray as xr
import yaml

import emostats as es
from emostats.cli import main
from emostats.report import build_report
from emostats.report.model import Bullets, Code, Document, Figure, Note, Paragraph, Section, Table, literal, spans
from emostats.report.write_qmd import to_qmd
from emostats.report.write_typst import compile_pdf, to_typst

pypdf = pytest.importorskip("pypdf")

NASTY = "a*b_c `d` #e $f @g <h> [i] ~j // k /* l \\ m; n | o ^p {q} 100% & 'r' \"s\" 1. t"


def pdf_text(path):
    reader = pypdf.PdfReader(str(path))
    return [page.extract_text() for page in reader.pages]


def _squash(text):
    return re.sub(r"\s+", " ", text)


def qmd_header(text):
    assert text.startswith("---\n")
    head, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(head), body


# --------------------------------------------------------------------------- content model and writers


def test_inline_markup_parsing():
    assert spans("x **b** *i* `c` @fig-a.") == [("text", "x "), ("bold", "b"), ("text", " "), ("ital", "i"),
                                                ("text", " "), ("code", "c"), ("text", " "), ("ref", "fig-a"),
                                                ("text", ".")]
    assert spans(literal(NASTY)) == [("text", NASTY)]
    assert spans("2 * 3 * 4") == [("text", "2 * 3 * 4")]  # spaced stars are not italics


def _nasty_document():
    sec = Section("Weird # title_1", label="sec-weird")
    sec.add(Paragraph(literal(NASTY)),
            Paragraph("see `code`; and (@tbl-w) **bold** *it*"),
            Bullets([literal(NASTY), "- starts like a list"]),
            Table(["col *a*", literal("b|c")], [[literal(NASTY), "2"], ["=x", "-y"]], literal(NASTY),
                  label="tbl-w", align="lr"),
            Note(literal(NASTY)),
            Code(NASTY))
    return Document("T #1 $x", subtitle=NASTY, date="2026-01-01", lead=[Paragraph("lead")], sections=[sec])


def test_qmd_writer_escapes_and_has_valid_yaml():
    text = to_qmd(_nasty_document())
    header, body = qmd_header(text)
    assert header["title"].replace("\\", "") == "T #1 $x"
    assert header["format"]["typst"]["papersize"] == "a4"
    assert "# Weird \\# title\\_1 {#sec-weird}" in body
    assert ": " in body and "{#tbl-w}" in body
    assert "b\\|c" in body  # a pipe inside a table cell cannot end the cell
    assert "\\$f" in body and "\\@g" in body and "a\\*b" in body
    assert "@tbl-w" in body
    assert "::: {.callout-note}" in body


def test_typst_writer_output_compiles_and_shows_text_verbatim(tmp_path):
    src = to_typst(_nasty_document())
    (tmp_path / "r.typ").write_text(src)
    pdf = compile_pdf(tmp_path / "r.typ", root=tmp_path)
    (tmp_path / "r.pdf").write_bytes(pdf)
    text = _squash(" ".join(pdf_text(tmp_path / "r.pdf")))
    # every special character survives (PDF text extraction may split lines)
    for piece in ["a*b_c", "`d`", "#e", "$f", "@g", "<h>", "[i]", "~j", "// k", "/* l", "\\ m; n", "| o ^p",
                  "{q} 100% & 'r' \"s\" 1. t", "T #1 $x", "see code; and (Table 1)", "=x", "-y", "b|c",
                  "- starts like a list"]:
        assert piece in text.replace("’", "'").replace("”", '"').replace("“", '"').replace("‘", "'"), piece


def test_figures_referenced_in_both_writers(tmp_path):
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "fig-a.png", dpi=50)
    doc = Document("T", sections=[Section("S", [Figure("fig-a.png", "A *line* of `x`; 50%", "fig-a"),
                                                Paragraph("As @fig-a shows.")])])
    qmd = to_qmd(doc)
    assert '![A *line* of `x`; 50%](fig-a.png){#fig-a width="100%"}' in qmd
    (tmp_path / "r.typ").write_text(to_typst(doc))
    (tmp_path / "r.pdf").write_bytes(compile_pdf(tmp_path / "r.typ", root=tmp_path))
    text = _squash(" ".join(pdf_text(tmp_path / "r.pdf")))
    assert "Figure 1: A line of x; 50%" in text and "As Figure 1 shows." in text


def test_table_shape_is_checked():
    with pytest.raises(ValueError, match="row 0: 1 cells for 2 columns"):
        Table(["a", "b"], [["1"]], "c")
