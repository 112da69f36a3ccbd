"""The one exception type the pipeline raises for bad input, so stages can report it cleanly."""

import re


class PipelineError(Exception):
    """Bad data, params or checkpoint: the message names the file, key or value at fault."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, without terminal colours, for a one-line error
    about what a library raised."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else repr(exc)
