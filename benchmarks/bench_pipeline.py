"""Goals 3 and 4: DVC's bookkeeping, the extract stage, and a train stage's peak memory.

    python benchmarks/bench_pipeline.py [--raw data/raw] [--repeats 3]

Nothing here touches the repository's own pipeline: a throwaway copy of it (dvc.yaml,
stages, src, params.yaml with every model cut to one epoch) gets the real tarballs from
``--raw``; its fetch stage is recorded as done (``dvc commit``), and one ``dvc repro``
builds the rest on the real 70,000 images. Then:

* ``dvc repro`` with nothing changed, timed (limit 3 s);
* ``models.mlp.lr`` changed in the copy's params.yaml: which stages ``dvc repro`` runs
  (must be train@mlp, evaluate@mlp, export@mlp and what depends on them: report);
* ``extract()`` from ``--raw`` into a temporary folder, timed over at least 5 rounds
  (limit 10 s on the fastest; the median and every round printed beside it), with
  plain ``tarfile`` extraction of the same tarballs for scale;
* ``python stages/train.py <model>`` in the copy: peak resident memory (limit 1.5 GB).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchlib import (
    REPO_ROOT,
    Check,
    Figure,
    Result,
    bench_parser,
    limit,
    median,
    rounds_for_fastest,
    show,
    timed,
)
from mnist_pipeline.data.extract import extract
from mnist_pipeline.formats.manifest import MANIFEST

COPIED = ["dvc.yaml", ".dvcignore", "stages", "src", ".dvc/config"]
BIN = Path(sys.executable).parent  # the virtual environment's python and dvc
NOOP_LIMIT_S, EXTRACT_LIMIT_S, MEMORY_LIMIT_GB = 3.0, 10.0, 1.5
MLP_DOWNSTREAM = {"train@mlp", "evaluate@mlp", "export@mlp", "report"}


def command(args: list[str], cwd: Path) -> str:
    """Run ``args`` in ``cwd`` with the virtual environment first on PATH; return stdout."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def make_repo(root: Path, raw_dir: Path, epochs: int, verify: bool) -> Path:
    """A git + DVC copy of the pipeline with the tarballs of ``raw_dir``, ``epochs`` a model."""
    repo = root / "repo"
    for name in COPIED:
        source, target = REPO_ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    for model in params["models"].values():
        model["epochs"] = epochs
    params["data"]["verify"] = verify
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("/data/\n/models/\n/dvc_plots/\n")
    shutil.copytree(raw_dir, repo / "data" / "raw")
    for args in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "add", "-A"],
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=bench", "commit", "-qm", "x"],
        ["dvc", "commit", "--force", "fetch"],  # the tarballs are the fetch stage's output
    ):
        command(args, repo)
    return repo


def peak_rss_gb(args: list[str], cwd: Path) -> float:
    """Peak resident memory of the process ``args``, in GB: its VmHWM, read until it exits.

    Not ``ru_maxrss``: Linux carries the parent's peak over into a child's at fork.
    """
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "TQDM_DISABLE": "1"}
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    status, peak_kb = Path(f"/proc/{process.pid}/status"), 0
    while process.poll() is None:
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {process.returncode}")
    return peak_kb * 1024 / 1e9


def set_mlp_lr(repo: Path) -> None:
    params_path = repo / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params["models"]["mlp"]["lr"] = params["models"]["mlp"]["lr"] / 2
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


def kernel_seconds() -> float:
    """CPU seconds this process (all its threads) has spent in the kernel so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


@dataclass
class ExtractTimes:
    ours: list[float]  # extract(), wall seconds per round
    ours_kernel: list[float]  # of which this process spent in the kernel
    plain: list[float]  # tarfile's extractall of the same tarballs
    count: int  # images extracted


def time_extract(raw_dir: Path, root: Path, rounds: int, verify: bool) -> ExtractTimes:
    """extract() and plain tarfile extraction of the same tarballs, alternating."""
    times = ExtractTimes([], [], [], 0)
    for round_ in range(rounds):
        out = root / f"extract-{round_}"
        os.sync()  # the last round's deletions are written out before this one's timing
        kernel = kernel_seconds()
        times.ours.append(timed(lambda: extract(raw_dir, out / "images", verify)))  # noqa: B023
        times.ours_kernel.append(kernel_seconds() - kernel)
        manifest = json.loads((out / "images" / MANIFEST).read_text())
        times.count = sum(split["images"] for split in manifest.values())
        shutil.rmtree(out)

        def untar(target: Path = out) -> None:
            for tarball in sorted(raw_dir.glob("*.tar.gz")):
                with tarfile.open(tarball) as tar:
                    tar.extractall(target, filter="data")

        os.sync()
        times.plain.append(timed(untar))
        shutil.rmtree(out)
    return times


def extract_figures(goal: str, times: ExtractTimes) -> list[Figure]:
    """The goal on the fastest round, with the median and the kernel's share beside it.

    Creating the 70,000 files is kernel work, and on a shared virtual machine the kernel
    time of the very same extraction can vary several-fold from round to round, which no
    change to the code moves (the printed rounds show it). The fastest round is the one
    least disturbed, as ``timeit`` takes it; the median and every round are printed too.
    """
    rounds = len(times.ours)
    fastest = min(range(rounds), key=times.ours.__getitem__)
    every = " / ".join(f"{t:.1f}" for t in times.ours)
    what = f"extract(), {times.count:,} images"
    return [
        limit(goal, f"{what}, fastest of {rounds} rounds", times.ours[fastest], EXTRACT_LIMIT_S),
        Figure(
            goal,
            f"{what}, median of {rounds} rounds ({every} s)",
            median(times.ours),
            "limit",
            EXTRACT_LIMIT_S,
            higher=False,
        ),
        Figure(
            goal,
            "extract(), fastest round: time in the kernel",
            times.ours_kernel[fastest],
            "the round's wall time",
            times.ours[fastest],
            higher=False,
        ),
        Figure(
            goal,
            "extract(), fastest round",
            times.ours[fastest],
            "plain tarfile extraction, fastest round",
            min(times.plain),
            higher=False,
        ),
    ]


def run(raw_dir: Path, repeats: int, epochs: int = 1, verify: bool = True) -> list[Result]:
    """``verify``: check the tarballs hold the full 70,000 (False for a smaller set)."""
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(tmp)
        extract_times = time_extract(raw_dir, root, rounds_for_fastest(repeats), verify)
        repo = make_repo(root, raw_dir, epochs, verify)
        built = ran_stages(command(["dvc", "repro"], repo))
        assert "extract" in built, f"the first dvc repro ran only {sorted(built)}"
        noop = []
        for _ in range(repeats):
            output = ""

            def repro() -> None:
                nonlocal output
                output = command(["dvc", "repro"], repo)

            noop.append(timed(repro))
            assert not ran_stages(output), f"dvc repro reran {ran_stages(output)}"
        status_s = median([timed(lambda: command(["dvc", "status"], repo)) for _ in range(repeats)])
        set_mlp_lr(repo)
        rerun = ran_stages(command(["dvc", "repro"], repo))
        memory = {
            name: peak_rss_gb([sys.executable, "stages/train.py", name], repo)
            for name in ("lenet5", "mlp")
        }
    goal = "pipeline"
    return [
        limit(goal, "dvc repro, nothing changed", median(noop), NOOP_LIMIT_S),
        Figure(goal, "dvc status, nothing changed", status_s, "limit of dvc repro", NOOP_LIMIT_S),
        Check(
            goal,
            "dvc repro after models.mlp.lr changed ran",
            ", ".join(sorted(rerun)) or "nothing",
            ", ".join(sorted(MLP_DOWNSTREAM)),
            rerun == MLP_DOWNSTREAM,
        ),
        *extract_figures(goal, extract_times),
        *(
            limit("memory", f"peak RSS, train stage {name}", gb, MEMORY_LIMIT_GB, "GB")
            for name, gb in memory.items()
        ),
    ]


def main() -> None:
    args = bench_parser(__doc__, "raw").parse_args()
    show(run(args.raw.resolve(), args.repeats))


if __name__ == "__main__":
    main()
