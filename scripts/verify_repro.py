"""Run ``dvc repro -f`` twice and compare every output of the pipeline byte for byte.

Usage: ``python scripts/verify_repro.py [REPO] [--json PATH] [--per-stage]`` (REPO
defaults to the current directory; ``make verify-repro`` runs it on this repository, on
the real data).

After each run it hashes every output that ``dvc.lock`` lists (a directory as one hash over
its files' relative paths and contents), then prints each output's sha256 from both runs
and whether they match. It exits 1 if any output differs. ``--per-stage`` runs each stage
on its own (``dvc repro -s -f STAGE``, in ``dvc.lock``'s order) and prints its wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml


def dvc_command() -> str:
    """The dvc beside this interpreter (the virtual environment's), else the one on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else shutil.which("dvc") or "dvc"


def lock_outputs(repo: Path) -> list[str]:
    """Every output path recorded in ``dvc.lock``, in stage order."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return [out["path"] for stage in lock["stages"].values() for out in stage.get("outs", [])]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def output_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's sorted ``relative path, file sha256`` lines."""
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def repro_and_hash(repo: Path, per_stage: bool = False) -> tuple[dict[str, str], dict[str, float]]:
    """``dvc repro -f`` in ``repo`` (its output to stderr); then the hash of every output.

    Returns the hashes and the wall time: of the whole run, or with ``per_stage`` of each
    stage run on its own.
    """
    commands = {"dvc repro -f": [dvc_command(), "repro", "-f"]}
    if per_stage:
        stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
        commands = {name: [dvc_command(), "repro", "-s", "-f", name] for name in stages}
    seconds = {}
    for name, command in commands.items():
        start = time.perf_counter()
        subprocess.run(command, cwd=repo, stdout=sys.stderr, check=True)
        seconds[name] = time.perf_counter() - start
    return {path: output_sha256(repo / path) for path in lock_outputs(repo)}, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", nargs="?", type=Path, default=Path.cwd())
    parser.add_argument("--json", type=Path, help="also write both runs' hashes here")
    parser.add_argument("--per-stage", action="store_true", help="time each stage on its own")
    args = parser.parse_args()
    repo = args.repo.resolve()

    runs = []
    for number in (1, 2):
        print(f"run {number}: dvc repro -f in {repo}", file=sys.stderr, flush=True)
        hashes, seconds = repro_and_hash(repo, args.per_stage)
        runs.append(hashes)
        for name, taken in seconds.items():
            print(f"run {number}: {name} took {taken:.1f} s", flush=True)

    first, second = runs
    paths = list(dict.fromkeys([*first, *second]))
    width = max(len(path) for path in paths)
    print(f"\n{'output':<{width}}  {'run 1 sha256':<64}  {'run 2 sha256':<64}  same")
    same = 0
    for path in paths:
        a, b = first.get(path, "missing"), second.get(path, "missing")
        match = a == b and a != "missing"
        same += match
        print(f"{path:<{width}}  {a:<64}  {b:<64}  {'yes' if match else 'NO'}")
    print(f"\n{same} of {len(paths)} outputs identical across two `dvc repro -f` runs")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    return 0 if same == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
