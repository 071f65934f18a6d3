"""Render a :class:`~emostats.report.model.Document` as Quarto Markdown (``report.qmd``)."""

import importlib.resources
import re

import yaml

from .model import Bullets, Code, Figure, Note, Paragraph, Table, spans

__all__ = ["to_qmd", "quarto_options"]

_ESCAPE = re.compile(r"([\\`*_\[\]<>#$@|~^\"])")  # '"' too: pandoc's smart quotes would curl it


def _text(value):
    return _ESCAPE.sub(r"\\\1", value)


def inline(text):
    """Markdown for inline-markup text.

    Examples
    --------
    >>> inline("r = **0.2** for `lag` (@fig-a) a_b $1")
    'r = **0.2** for `lag` (@fig-a) a\\\\_b \\\\$1'
    """
    out = []
    for kind, value in spans(text):
        if kind == "text":
            out.append(_text(value))
        elif kind == "bold":
            out.append(f"**{_text(value)}**")
        elif kind == "ital":
            out.append(f"*{_text(value)}*")
        elif kind == "code":
            fence = "``" if "`" in value else "`"
            out.append(f"{fence}{value}{fence}")
        else:
            out.append(f"@{value}")
    result = "".join(out).replace("\n", " ")
    # a paragraph starting like a list item or heading must stay a paragraph
    return re.sub(r"^(\d+)\.(\s)", r"\1\\.\2", re.sub(r"^([-+])(\s)", r"\\\1\2", result))


def quarto_options():
    """The Quarto options from the packaged template ``templates/quarto.yml``."""
    text = (importlib.resources.files("emostats.report") / "templates" / "quarto.yml").read_text()
    return yaml.safe_load(text)


def _block(block):
    if isinstance(block, Paragraph):
        return inline(block.text)
    if isinstance(block, Bullets):
        return "\n".join(f"- {inline(item)}" for item in block.items)
    if isinstance(block, Code):
        runs = [len(m) for m in re.findall(r"`+", block.text)]
        fence = "`" * max(3, max(runs, default=0) + 1)
        return f"{fence}text\n{block.text.rstrip()}\n{fence}"
    if isinstance(block, Note):
        return f"::: {{.callout-note}}\n## {inline(block.title)}\n\n{inline(block.text)}\n:::"
    if isinstance(block, Figure):
        label = f"#{block.label} " if block.label else ""
        return f'![{inline(block.caption)}]({block.path}){{{label}width="{round(block.width * 100)}%"}}'
    if isinstance(block, Table):
        def row(cells):
            return "| " + " | ".join(inline(str(c)) for c in cells) + " |"
        rule = {"l": ":---", "r": "---:", "c": ":---:"}
        lines = [row(block.columns), "|" + "|".join(rule[a] for a in block.align) + "|"]
        lines += [row(r) for r in block.rows]
        label = f" {{#{block.label}}}" if block.label else ""
        lines += ["", f": {inline(block.caption)}{label}"]
        return "\n".join(lines)
    raise TypeError(f"unknown block {type(block).__name__}")


def _section(section, level):
    anchor = f" {{#{section.label}}}" if section.label else ""
    parts = [f"{'#' * level} {inline(section.title)}{anchor}"]
    parts += [_block(b) for b in section.blocks]
    parts += [_section(s, level + 1) for s in section.subsections]
    return "\n\n".join(parts)


def to_qmd(doc):
    """The text of ``report.qmd``: a YAML header, then one Markdown section per report section.

    Examples
    --------
    >>> from emostats.report.model import Document, Section, Paragraph
    >>> text = to_qmd(Document("T", sections=[Section("S", [Paragraph("x")], label="sec-s")]))
    >>> text.splitlines()[0], "# S {#sec-s}" in text
    ('---', True)
    """
    header = {"title": _text(doc.title)}
    if doc.subtitle:
        header["subtitle"] = _text(doc.subtitle)
    if doc.date:
        header["date"] = doc.date
    if doc.keywords:
        header["keywords"] = list(doc.keywords)
    header.update(quarto_options())
    head = yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100).strip()
    body = [inline(p.text) if isinstance(p, Paragraph) else _block(p) for p in doc.lead]
    body += [_section(s, 1) for s in doc.sections]
    return f"---\n{head}\n---\n\n" + "\n\n".join(body) + "\n"
