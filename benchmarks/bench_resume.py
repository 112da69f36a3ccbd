"""What a kill costs: a LeNet-5 train stage run whole, against one SIGKILLed after some
epochs and resumed; wall times, and whether the outputs are the same bytes.

    python benchmarks/bench_resume.py [--epochs 6] [--kill-after 3]

Runs ``stages/train.py lenet5`` on the real images (``data/images``, from
`dvc repro extract`) in two temporary workspaces with ``params.yaml``'s recipe cut to
``--epochs`` epochs: once whole, once killed as soon as its history shows ``--kill-after``
epochs and then run again. Prints the whole run's time, the killed run's, the resumed
run's, and the sha256 of each output of both.
"""

from __future__ import annotations

import argparse
import hashlib
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchlib import INPUTS, REPO_ROOT, machine_line

OUTPUTS = ["models/lenet5.pt", "plots/models/lenet5/history.csv", "metrics/lenet5_live.json"]


def workspace(root: Path, images: Path, epochs: int) -> Path:
    """A directory laid out as the train stage expects: the images and the cut recipe."""
    (root / ".dvc").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data" / "images").symlink_to(images.resolve())
    params = yaml.safe_load(INPUTS["params"].read_text())
    params["models"]["lenet5"]["epochs"] = epochs
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def stage(cwd: Path) -> subprocess.Popen[str]:
    script = [sys.executable, str(REPO_ROOT / "stages" / "train.py"), "lenet5"]
    return subprocess.Popen(
        script, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen[str]) -> None:
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"the train stage exited {proc.returncode}:\n{output}")


def digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in OUTPUTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--kill-after", type=int, default=3)
    parser.add_argument("--images", type=Path, default=INPUTS["images"])
    args = parser.parse_args()
    print(f"machine: {machine_line()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="resume-") as tmp:
        whole = workspace(Path(tmp) / "whole", args.images, args.epochs)
        started = time.perf_counter()
        finish(stage(whole))
        whole_s = time.perf_counter() - started

        broken = workspace(Path(tmp) / "broken", args.images, args.epochs)
        history = broken / "plots" / "lenet5" / "history.csv"
        started = time.perf_counter()
        proc = stage(broken)
        while not history.exists() or len(history.read_text().splitlines()) <= args.kill_after:
            if proc.poll() is not None:
                raise SystemExit(f"the stage ended before the kill:\n{proc.communicate()[0]}")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed_s = time.perf_counter() - started
        started = time.perf_counter()
        finish(stage(broken))
        resumed_s = time.perf_counter() - started

        total = killed_s + resumed_s
        print(f"LeNet-5, {args.epochs} epochs, whole: {whole_s:.1f} s", flush=True)
        print(f"killed after {args.kill_after} epochs: {killed_s:.1f} s")
        print(f"resumed run: {resumed_s:.1f} s")
        print(f"killed + resumed: {total:.1f} s ({total / whole_s:.2f}x whole)")
        same = digests(whole) == digests(broken)
        for name, digest in digests(broken).items():
            print(f"sha256 {name}: {digest}")
        print("outputs byte-identical to the whole run's" if same else "OUTPUTS DIFFER")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
