"""The one exception type the pipeline raises for bad input, and how its messages quote."""

from __future__ import annotations

import re

EXCERPT = 60  # characters of an untrusted value a message quotes at most


class PipelineError(Exception):
    """Bad data, params or checkpoint: the message names the file, key or value at fault."""


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """``value`` quoted for a one-line message: printable, escaped, at most ``limit`` characters.

    Strings are quoted and escaped (a newline cannot forge a line); anything else is
    shown by its type for containers, so a huge or deeply nested value is never expanded.
    """
    if isinstance(value, str | bytes):
        text = repr(value[: limit + 1])
    elif isinstance(value, bool | int | float) or value is None:
        text = repr(value)
    else:
        size = f" of {len(value)}" if hasattr(value, "__len__") else ""
        return f"a {type(value).__name__}{size}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message, without terminal colours or other unprintable
    characters, at most ``limit`` long: a one-line error about what a library raised."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = text.splitlines()[0] if text else repr(exc)
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."
