"""The content model of a report: one tree of blocks that every writer renders.

Sections hold blocks (:class:`Paragraph`, :class:`Bullets`, :class:`Table`,
:class:`Figure`, :class:`Note`, :class:`Code`). Text uses a tiny inline markup
that both Quarto Markdown and Typst can express:

``**bold**``, ``*italic*``, ```code```, and cross-references ``@fig-name``,
``@tbl-name``, ``@sec-name`` (both Quarto and Typst write references this way).
A backslash makes the next character literal. :func:`spans` parses it once;
each writer only escapes plain text for its own syntax.
"""

import re
from dataclasses import dataclass, field

__all__ = ["Document", "Section", "Paragraph", "Bullets", "Table", "Figure", "Note", "Code",
           "spans", "literal"]

_INLINE = re.compile(
    r"\\(?P<esc>.)"
    r"|\*\*(?P<bold>.+?)\*\*"
    r"|\*(?P<ital>[^*\s][^*]*?)\*"
    r"|`(?P<code>[^`]+)`"
    r"|@(?P<ref>(?:fig|tbl|sec)-[A-Za-z0-9_-]*[A-Za-z0-9])",
    re.S,
)


def spans(text):
    """Parse inline markup into ``(kind, text)`` pairs, kind in text/bold/ital/code/ref.

    Examples
    --------
    >>> spans("a **b** *c* `d` @fig-x e\\\\*")
    [('text', 'a '), ('bold', 'b'), ('text', ' '), ('ital', 'c'), ('text', ' '), ('code', 'd'), ('text', ' '), ('ref', 'fig-x'), ('text', ' e*')]
    """
    out = []
    pos = 0

    def add(kind, value):
        if kind == "text" and out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + value)
        elif value:
            out.append((kind, value))

    for m in _INLINE.finditer(text):
        add("text", text[pos:m.start()])
        kind = m.lastgroup
        add("text" if kind == "esc" else kind, m.group(kind))
        pos = m.end()
    add("text", text[pos:])
    return out


def literal(text):
    """Escape ``text`` so that it is shown as is (no markup), e.g. names from a study file.

    Examples
    --------
    >>> spans(literal("a*b `c` @fig-x"))
    [('text', 'a*b `c` @fig-x')]
    """
    return re.sub(r"([\\*`@])", r"\\\1", str(text))


@dataclass
class Paragraph:
    """A paragraph of inline-markup text."""

    text: str


@dataclass
class Bullets:
    """A bulleted list; each item is inline-markup text."""

    items: list


@dataclass
class Code:
    """A block of verbatim text (commands, provenance)."""

    text: str


@dataclass
class Note:
    """A highlighted remark, e.g. why a section has no results."""

    text: str
    title: str = "Note"


@dataclass
class Table:
    """A table: header cells, rows of cells (inline markup), caption, alignments l/c/r.

    ``breakable`` lets a long table continue on the next page (its header repeats);
    ``small`` sets it in a smaller type with narrower cell padding (a wide table in the PDF).
    """

    columns: list
    rows: list
    caption: str
    label: str = ""
    align: str = ""
    widths: tuple = ()
    breakable: bool = False
    small: bool = False

    def __post_init__(self):
        if not self.align:
            self.align = "l" * len(self.columns)
        if len(self.align) != len(self.columns):
            raise ValueError(f"table {self.label!r}: {len(self.align)} alignments for {len(self.columns)} columns")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.label!r} row {i}: {len(row)} cells for {len(self.columns)} columns")


@dataclass
class Figure:
    """An image file (name relative to the report) with its caption."""

    path: str
    caption: str
    label: str
    width: float = 1.0


@dataclass
class Section:
    """A numbered section with blocks and subsections."""

    title: str
    blocks: list = field(default_factory=list)
    label: str = ""
    subsections: list = field(default_factory=list)

    def add(self, *blocks):
        self.blocks.extend(blocks)
        return self

    def walk(self):
        yield self
        for sub in self.subsections:
            yield from sub.walk()


@dataclass
class Document:
    """A whole report: front matter, an abstract-like lead and numbered sections.

    ``title``, ``subtitle`` and ``date`` are plain text (no inline markup).
    """

    title: str
    subtitle: str = ""
    date: str = ""
    lead: list = field(default_factory=list)
    sections: list = field(default_factory=list)
    keywords: tuple = ()

    def walk(self):
        for section in self.sections:
            yield from section.walk()

    def figures(self):
        """Every :class:`Figure` of the document, in order."""
        return [b for s in self.walk() for b in s.blocks if isinstance(b, Figure)]
