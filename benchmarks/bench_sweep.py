"""A queued sweep with one worker and with two: wall time of each and their ratio.

    python benchmarks/bench_sweep.py [--experiments 4] [--epochs 5] [--jobs 1 2]

Queues ``--experiments`` MLP experiments (seeds 0, 1, ...) of ``--epochs`` epochs in a
temporary clone of this repository's committed HEAD that shares its DVC cache, then runs
the queue with ``dvc queue start -j N`` and ``MNIST_PIPELINE_WORKERS=N`` for each N of
``--jobs``, timing from the start until no experiment is queued or running. Each
experiment is ``dvc exp run train@mlp``: in its own temporary directory, as DVC runs
queued experiments, it also rebuilds the image folder (not cached) from the tarballs.
Needs the fetch stage's tarballs in the DVC cache (`dvc repro extract` puts them there).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import REPO_ROOT, machine_line

BIN = Path(sys.executable).parent


def dvc(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the virtual environment's dvc; its output, or an error that shows it."""
    result = subprocess.run(
        [str(BIN / "dvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def sweep(repo: Path, experiments: int, epochs: int, jobs: int) -> float:
    """Queue the sweep, run it on ``jobs`` workers; the wall time until all finished."""
    seeds = ",".join(str(seed) for seed in range(experiments))
    overrides = ["-S", f"models.mlp.epochs={epochs}", "-S", f"models.mlp.seed={seeds}"]
    dvc(["exp", "run", "--queue", *overrides, "train@mlp"], repo)
    env = {**os.environ, "MNIST_PIPELINE_WORKERS": str(jobs), "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "dvc"), "queue", "start", "-j", str(jobs)],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,  # the workers outlive this command and hold its output
        stderr=subprocess.DEVNULL,
        check=True,
    )
    while re.search(r"Queued|Running", status := dvc(["queue", "status"], repo)):
        time.sleep(0.5)
    seconds = time.perf_counter() - started
    if status.count("Success") != experiments:
        raise SystemExit(f"the -j {jobs} sweep did not succeed:\n{status}")
    dvc(["queue", "stop"], repo)
    dvc(["queue", "remove", "--all"], repo)
    dvc(["exp", "remove", "--all-commits"], repo)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    cache = Path(dvc(["cache", "dir"], REPO_ROOT).strip())
    times = {}
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(repo)], check=True)
        dvc(["cache", "dir", "--local", str(cache)], repo)
        for jobs in args.jobs:
            times[jobs] = sweep(repo, args.experiments, args.epochs, jobs)
            print(
                f"sweep of {args.experiments} MLP experiments x {args.epochs} epochs, "
                f"-j {jobs}: {times[jobs]:.1f} s",
                flush=True,
            )
    first, *others = args.jobs
    for jobs in others:
        print(f"-j {first} / -j {jobs} wall time: {times[first] / times[jobs]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
