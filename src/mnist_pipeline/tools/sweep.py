"""One experiment of a sweep, as each job of the GitHub sweep workflow runs it (``make
experiment``): pull the baseline's outputs when a DVC remote is set, run the experiment
with its ``-S`` overrides, and push it (git refs to the git remote, outputs to the DVC
remote) so that ``dvc exp pull`` brings it to any clone.

    python -m mnist_pipeline.tools.sweep NAME [KEY=VALUE ...] [--push GIT_REMOTE]
"""

from __future__ import annotations

import argparse
import logging
import re

from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.tools.dvc_cli import dvc

log = logging.getLogger(__name__)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a name git accepts in a ref


def run_experiment(name: str, overrides: list[str], push: str | None = None) -> None:
    """``dvc exp run --name NAME -S ...``, after ``dvc pull`` when a remote is set; then
    ``dvc exp push PUSH NAME`` when ``push`` names a git remote."""
    if not NAME.fullmatch(name) or name.endswith((".lock", ".")) or ".." in name:
        raise PipelineError(f"experiment name {name!r}: use letters, digits, '.', '_' or '-'")
    bad = [item for item in overrides if "=" not in item]
    if bad:
        raise PipelineError(f"override {bad[0]!r}: expected KEY=VALUE, as dvc exp run -S takes")
    if dvc(["remote", "list"]).strip():
        # the baseline's outputs: only the stages the overrides touch then run
        dvc(["pull", "--allow-missing"], capture=False)
    sets = [arg for item in overrides for arg in ("-S", item)]
    dvc(["exp", "run", "--name", name, *sets], capture=False)
    if push:
        dvc(["exp", "push", push, name], capture=False)
        log.info(
            "pushed experiment %s to %s: `dvc exp pull %s %s` fetches it", name, push, push, name
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_pipeline.tools.sweep", description=__doc__
    )
    parser.add_argument("name", help="the experiment's name")
    parser.add_argument("overrides", nargs="*", help="params, as dvc exp run -S takes them")
    parser.add_argument("--push", metavar="GIT_REMOTE", help="dvc exp push to this git remote")
    args = parser.parse_args(argv)
    run_experiment(args.name, args.overrides, args.push)


if __name__ == "__main__":
    main_of(main)
