"""One entry point for every stage script and command: logging set up, and every way a run
ends turned into its exit code and one line on stderr.

- bad input (:class:`.PipelineError`): its message, exit 1;
- Ctrl-C or SIGTERM: "interrupted", exit 130;
- stdout closed early (``| head``): a quiet exit 0 (nothing more can be said).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Collection
from pathlib import Path

from mnist_pipeline.core.errors import PipelineError, excerpt

log = logging.getLogger("mnist_pipeline")


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` (default: the command line) and return the process's exit code."""
    setup_logging()
    # `kill` and CI time-outs send SIGTERM: unwind like Ctrl-C so no temporary file is left
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return main(sys.argv[1:] if argv is None else argv) or 0
    except PipelineError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        # the reader left (`| head -1`): point stdout at /dev/null so the exit flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main_of(main: Callable[[list[str]], int | None]) -> None:
    """``sys.exit(run(main))``: the last line of every stage script."""
    sys.exit(run(main))


def model_argument(argv: list[str], models: Collection[str]) -> str:
    """The one command-line argument of a per-model stage: a model that params.yaml names."""
    if len(argv) != 1 or argv[0] not in models:
        script = Path(sys.argv[0]).name
        given = excerpt(argv[0]) if argv else "nothing"
        raise PipelineError(f"usage: {script} MODEL, one of: {', '.join(models)} (got {given})")
    return argv[0]
