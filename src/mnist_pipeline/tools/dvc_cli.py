"""Run the DVC command line of this environment and fail with the command named."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from mnist_pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)


def dvc(args: list[str], cwd: Path | None = None, capture: bool = True) -> str:
    """Run ``dvc ARGS`` with this interpreter's DVC; return its stdout (empty if not captured).

    Raises :class:`PipelineError` naming the command and quoting its error output on failure.
    """
    command = [sys.executable, "-m", "dvc", *args]
    log.info("$ dvc %s", " ".join(args))
    result = subprocess.run(
        command,
        cwd=cwd,
        capture_output=capture,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip() if capture else ""
        raise PipelineError(
            f"'dvc {' '.join(args)}' exited {result.returncode}" + (f": {detail}" if detail else "")
        )
    return result.stdout if capture else ""
