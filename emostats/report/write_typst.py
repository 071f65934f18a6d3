"""Render a :class:`~emostats.report.model.Document` as Typst source and compile it to PDF.

The page set-up comes from the packaged template ``templates/preamble.typ``; the
body is generated from the same content model as ``report.qmd``.
"""

import importlib.resources
import json
import re

from .._version import __version__
from .model import Bullets, Code, Figure, Note, Paragraph, Table, spans

__all__ = ["to_typst", "compile_pdf"]

_ESCAPE = re.compile(r"([\\#$*_`@<>\[\]~/\"])")  # '"' too: Typst would make it a curly quote


def _string(value):
    """A Typst string literal."""
    return json.dumps(str(value), ensure_ascii=False)


def _text(value):
    return _ESCAPE.sub(r"\\\1", value)


def inline(text):
    """Typst markup for inline-markup text.

    Examples
    --------
    >>> inline("r = **0.2** for `lag`; (@fig-a) a_b $1 // x")
    'r = *0.2* for #raw("lag")\\\\; (#ref(<fig-a>)) a\\\\_b \\\\$1 \\\\/\\\\/ x'
    """
    out = []
    after_code = False
    for kind, value in spans(text):
        if kind == "text":
            value = _text(value)
            if after_code and value[:1] in ";.([{":  # would continue the #expression
                value = "\\" + value
            out.append(value)
        elif kind == "bold":
            out.append(f"*{_text(value)}*")
        elif kind == "ital":
            out.append(f"_{_text(value)}_")
        elif kind == "code":
            out.append(f"#raw({_string(value)})")
        else:
            out.append(f"#ref(<{value}>)")
        after_code = kind in ("code", "ref")
    result = "".join(out).replace("\n", " ")
    # markup that only means something at the start of a line
    return re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"^([-+=])", r"\\\1", result))


def _content(text):
    return f"[{inline(text)}]"


def _block(block):
    if isinstance(block, Paragraph):
        return inline(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {inline(item)}" for item in block.items)
    if isinstance(block, Code):
        return (f"#block(fill: luma(246), inset: 6pt, radius: 2pt, width: 100%)"
                f"[#raw({_string(block.text.rstrip())}, block: true)]")
    if isinstance(block, Note):
        return (f"#block(fill: rgb(\"#FFF4E0\"), stroke: (left: 2pt + rgb(\"#E69F00\")), inset: 8pt, "
                f"width: 100%)[*{_text(block.title)}.* {inline(block.text)}]")
    if isinstance(block, Figure):
        label = f" <{block.label}>" if block.label else ""
        return (f"#figure(image({_string(block.path)}, width: {round(block.width * 100)}%),\n"
                f"  placement: auto, caption: {_content(block.caption)},\n){label}")
    if isinstance(block, Table):
        names = {"l": "left", "r": "right", "c": "center"}
        columns = ", ".join(block.widths) if block.widths else ", ".join("auto" for _ in block.columns)
        align = ", ".join(names[a] for a in block.align)
        cells = [", ".join(_content(str(c)) for c in block.columns)]
        cells += [", ".join(_content(str(c)) for c in row) for row in block.rows]
        body = ",\n    ".join([f"table.header({cells[0]})"] + cells[1:])
        label = f" <{block.label}>" if block.label else ""
        figure = (f"figure(\n  table(columns: ({columns},), align: ({align},),\n    {body},\n  ),\n"
                  f"  caption: {_content(block.caption)}, kind: table,\n)")
        rules = []
        if block.breakable:
            rules.append("show figure: set block(breakable: true)")
        if block.small:
            rules += ["show table: set text(size: 7.4pt)", "set table(inset: (x: 3pt, y: 2.6pt))"]
        if rules:
            return "#{\n" + "".join(f"  {r}\n" for r in rules) + f"  [#{figure}{label}]\n}}"
        return f"#{figure}{label}"
    raise TypeError(f"unknown block {type(block).__name__}")


def _section(section, level):
    label = f" <{section.label}>" if section.label else ""
    # figures float (placement: auto) but never past the end of their section
    flush = "#place.flush()\n" if level == 1 else ""
    parts = [f"{flush}{'=' * level} {inline(section.title)}{label}"]
    parts += [_block(b) for b in section.blocks]
    parts += [_section(s, level + 1) for s in section.subsections]
    return "\n\n".join(parts)


def preamble(doc):
    """The page set-up and title block, from ``templates/preamble.typ``."""
    text = (importlib.resources.files("emostats.report") / "templates" / "preamble.typ").read_text()
    values = {"title": _string(doc.title), "subtitle": _string(doc.subtitle), "date": _string(doc.date),
              "version": __version__}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def to_typst(doc):
    """The Typst source of the report (compile it with :func:`compile_pdf`).

    Examples
    --------
    >>> from emostats.report.model import Document, Section, Paragraph
    >>> src = to_typst(Document("T", sections=[Section("S", [Paragraph("x")], label="sec-s")]))
    >>> "= S <sec-s>" in src
    True
    """
    body = [_block(b) for b in doc.lead]
    body.append("#outline(depth: 1, indent: auto)")
    body += [_section(s, 1) for s in doc.sections]
    return preamble(doc) + "\n" + "\n\n".join(body) + "\n"


def compile_pdf(source_path, root=None):
    """Compile a ``.typ`` file with the Typst compiler of the ``typst`` package; return PDF bytes."""
    import typst

    from ..errors import EmostatsError

    try:
        return typst.compile(str(source_path), root=None if root is None else str(root))
    except typst.TypstError as exc:  # our generator wrote invalid Typst: a bug, but say where
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmostatsError(f"typst could not compile {source_path}: {first}") from exc
