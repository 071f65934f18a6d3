"""The self-steering tool's call format: ``steer_sae("ID", STRENGTH)`` on a line of its own, parsed strictly.

The self-steering protocol (:mod:`extract.protocols`) tells the model it has this
tool; :func:`find_tool_call` finds the first call attempt in the model's output and
:func:`parse_tool_call` accepts only the exact form, refusing anything else with the
reason the tool answers with.
"""

import re
from dataclasses import dataclass

__all__ = ["ToolCall", "ToolCallError", "parse_tool_call", "find_tool_call", "TOOL_NAME", "MAX_STRENGTH"]

#: the self-steering tool
TOOL_NAME = "steer_sae"
#: strengths the tool accepts (inclusive bound on |strength|)
MAX_STRENGTH = 100.0


@dataclass(frozen=True)
class ToolCall:
    """One parsed call ``steer_sae("FEATURE", STRENGTH)``."""

    feature: int
    strength: float

    def __str__(self):
        return f'{TOOL_NAME}("{self.feature}", {self.strength:g})'


class ToolCallError(ValueError):
    """A line that starts a tool call but does not follow the strict format (or asks for what is not allowed)."""


_CALL = re.compile(TOOL_NAME + r'\("(\d{1,12})", (-?\d{1,3}(?:\.\d{1,3})?)\)')


def parse_tool_call(line, feature=None, max_strength=MAX_STRENGTH):
    """Parse one output line as a call of the steering tool, strictly.

    The only accepted form is the whole (stripped) line ``steer_sae("ID", STRENGTH)``:
    the id in double quotes, one comma and one space, a decimal strength with at most 3
    decimals, nothing before or after. A line that does not start with ``steer_sae`` is
    not a call (None). A line that starts with it but breaks the format, names another
    feature than ``feature``, or has ``|strength| > max_strength`` raises
    :class:`ToolCallError` with the reason (the tool answers with it).

    Examples
    --------
    >>> parse_tool_call('steer_sae("42", 60)', feature=42)
    ToolCall(feature=42, strength=60.0)
    >>> parse_tool_call("I feel calm.") is None
    True
    >>> parse_tool_call('steer_sae(42, 60)')
    Traceback (most recent call last):
    ...
    extract.tool_calls.ToolCallError: malformed call 'steer_sae(42, 60)'; expected steer_sae("ID", STRENGTH)
    """
    s = line.strip()
    if not s.startswith(TOOL_NAME):
        return None
    m = _CALL.fullmatch(s)
    if m is None:
        raise ToolCallError(f"malformed call {s[:80]!r}; expected {TOOL_NAME}(\"ID\", STRENGTH)")
    fid, strength = int(m.group(1)), float(m.group(2))
    if feature is not None and fid != int(feature):
        raise ToolCallError(f"feature {fid} is not the feature under study; only feature {int(feature)} can be steered")
    if abs(strength) > max_strength:
        raise ToolCallError(f"strength {strength:g} out of range; expected -{max_strength:g} to {max_strength:g}")
    return ToolCall(fid, strength)


def find_tool_call(text, feature=None, final=True):
    """The first call attempt in a model's output: (end, call, error) or None.

    ``end`` is the character index just after the attempt's line (its newline not
    included); ``call`` the :class:`ToolCall` or None; ``error`` the reason of a bad
    attempt. With ``final=False`` (text still being generated) an unfinished last line is
    an attempt only once it is a complete, valid call.

    Examples
    --------
    >>> find_tool_call('Let me try.\\nsteer_sae("7", -20)\\nOh.', feature=7)
    (31, ToolCall(feature=7, strength=-20.0), None)
    """
    start = 0
    lines = text.split("\n")
    for k, line in enumerate(lines):
        end = start + len(line)
        last = k == len(lines) - 1
        try:
            call = parse_tool_call(line, feature)
        except ToolCallError as exc:
            if last and not final:
                return None
            return end, None, str(exc)
        if call is not None:
            return end, call, None
        start = end + 1
    return None

