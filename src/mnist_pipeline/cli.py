"""Command-line plumbing for the stage scripts and ``python -m mnist_pipeline``: logging set
up, bad input reported as one clear line, the per-model stages' argument."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Collection
from pathlib import Path

from mnist_pipeline.errors import PipelineError


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_stage(main: Callable[[list[str]], None]) -> None:
    """Call ``main(sys.argv[1:])``; exit 1 with the message on a :class:`PipelineError`."""
    setup_logging()
    # `kill` and CI time-outs send SIGTERM: unwind like Ctrl-C so no temporary file is left
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        main(sys.argv[1:])
    except PipelineError as exc:
        logging.getLogger("stage").error("%s", exc)
        sys.exit(1)
    except KeyboardInterrupt:
        logging.getLogger("stage").error("interrupted: no output was written")
        sys.exit(130)


def model_argument(argv: list[str], models: Collection[str]) -> str:
    """The one command-line argument of a per-model stage: a model that params.yaml names."""
    if len(argv) != 1 or argv[0] not in models:
        script = Path(sys.argv[0]).name
        raise PipelineError(f"usage: {script} MODEL, one of: {', '.join(models)}")
    return argv[0]
