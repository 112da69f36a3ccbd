"""The one exception type the pipeline raises for bad input, so stages can report it cleanly."""


class PipelineError(Exception):
    """Bad data, params or checkpoint: the message names the file, key or value at fault."""
