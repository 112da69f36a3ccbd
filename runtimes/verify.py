"""Score the exported models in every runtime, against PyTorch and against their metrics.

    python runtimes/verify.py [--root DIR] [MODEL ...]      (make verify-runtimes)

For each model (default: every model in params.yaml) it runs the test digits of
``data/images`` through PyTorch from ``models/<model>.pt``, the way the evaluate stage
does, and through ``models/onnx/<model>.onnx`` in onnxruntime (this environment), OpenVINO
and OpenCV's DNN module (the environment ``make runtimes`` builds, run by
``runtimes/score.py``). Each runtime must give PyTorch's class for every digit, logits
within the export stage's tolerance, and ``metrics/<model>.json``'s accuracy within
:data:`ACCURACY_TOLERANCE`. OpenVINO at its default precision is shown too, not checked.
Prints one row per model and runtime, then exits 1 if any check failed. Run it after
``dvc repro`` (or ``make ci``), on the files it wrote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import load_params
from mnist_pipeline.formats.onnxfile import open_model
from mnist_pipeline.model.dataset import read_splits
from mnist_pipeline.model.export import TOLERANCE
from mnist_pipeline.model.inference import evaluate_checkpoint, open_checkpoint
from mnist_pipeline.model.runtime import cpu_name

HERE = Path(__file__).resolve().parent
# the separate environment `make runtimes` builds, and the script it runs there
RUNTIMES_PYTHON = HERE.parent / ".runtimes" / "bin" / "python"
RUNTIMES_INSTALLED = HERE.parent / ".runtimes" / ".installed"  # written once all installed
SCORE = HERE / "score.py"
ACCURACY_TOLERANCE = 1e-4  # one digit in 10,000
# shown beside the others, not checked: why the check runs OpenVINO in float32
UNCHECKED = {"openvino-default"}


@dataclass(frozen=True)
class Row:
    """One runtime's logits for one model, compared with PyTorch's."""

    model: str
    runtime: str
    accuracy: float
    disagreements: int  # digits whose class differs from PyTorch's
    max_difference: float  # the largest difference of any logit from PyTorch's

    def failures(self, expected_accuracy: float) -> list[str]:
        where = f"model '{self.model}' in {self.runtime}"
        problems = []
        if self.disagreements:
            problems.append(
                f"{where}: {self.disagreements} digits get another class than in PyTorch"
            )
        if not self.max_difference <= TOLERANCE:
            problems.append(
                f"{where}: logits differ from PyTorch's by up to {self.max_difference:.3g} "
                f"(tolerance {TOLERANCE:g})"
            )
        if not abs(self.accuracy - expected_accuracy) <= ACCURACY_TOLERANCE:
            problems.append(
                f"{where}: accuracy {100 * self.accuracy:.2f} %, "
                f"metrics say {100 * expected_accuracy:.2f} %"
            )
        return problems


def compare(
    model: str, runtime: str, logits: np.ndarray, reference: np.ndarray, labels: np.ndarray
) -> Row:
    """``logits`` (a runtime's) against ``reference`` (PyTorch's) for digits ``labels``."""
    classes = logits.argmax(axis=1)
    return Row(
        model,
        runtime,
        accuracy=float((classes == labels).mean()),
        disagreements=int((classes != reference.argmax(axis=1)).sum()),
        max_difference=float(np.abs(logits - reference).max()) if len(labels) else 0.0,
    )


def score_elsewhere(
    onnx_paths: list[Path], pixels: np.ndarray, python: Path = RUNTIMES_PYTHON
) -> tuple[dict[str, dict[Path, np.ndarray]], dict[str, str]]:
    """OpenVINO's and OpenCV's logits for uint8 ``pixels`` from each file, and their versions.

    Fails naming the runtime and the file when one cannot run a file.
    """
    if not python.exists():
        raise PipelineError(
            f"{python}: no environment for OpenVINO and OpenCV: `make runtimes` builds it"
        )
    with tempfile.TemporaryDirectory(prefix="runtimes-") as work:
        folder = Path(work)
        np.save(folder / "pixels.npy", np.ascontiguousarray(pixels, dtype=np.uint8))
        args = [str(python), str(SCORE), str(folder / "pixels.npy"), str(folder)]
        done = subprocess.run(
            [*args, *map(str, onnx_paths)], capture_output=True, text=True, check=False
        )
        if done.returncode:
            lines = done.stderr.strip().splitlines() or [f"exit code {done.returncode}"]
            raise PipelineError(f"{SCORE.name}: {lines[-1]}")
        versions = json.loads(done.stdout.strip().splitlines()[-1])
        results = {
            runtime: {path: np.load(folder / f"{path.stem}.{runtime}.npy") for path in onnx_paths}
            for runtime in versions
        }
    return results, versions


def every_runtime(
    onnx_paths: list[Path], pixels: np.ndarray, python: Path = RUNTIMES_PYTHON
) -> tuple[dict[str, dict[Path, np.ndarray]], dict[str, str]]:
    """Each runtime's logits for ``pixels`` from each file: onnxruntime, OpenVINO, OpenCV."""
    import onnxruntime

    local = {path: open_model(path).logits(pixels) for path in onnx_paths}
    others, versions = score_elsewhere(onnx_paths, pixels, python)
    return {"onnxruntime": local, **others}, {"onnxruntime": onnxruntime.__version__, **versions}


def verify(root: Path, names: list[str]) -> tuple[list[Row], list[str]]:
    """Every runtime's row for each model in ``names`` under ``root``, and every failure."""
    test = read_splits(root / "data" / "images", train=False).test
    pixels, labels = test.images.numpy(), test.labels.numpy()
    paths = {name: root / "models" / "onnx" / f"{name}.onnx" for name in names}
    logits, versions = every_runtime(list(paths.values()), pixels)
    rows, failures = [], []
    for name in names:
        checkpoint = open_checkpoint(root / "models" / f"{name}.pt", name, torch.device("cpu"))
        reference = evaluate_checkpoint(checkpoint, test.images).logits.numpy()
        metrics_path = root / "metrics" / f"{name}.json"
        try:
            expected = float(json.loads(metrics_path.read_text())["accuracy"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PipelineError(f"{metrics_path}: no accuracy to compare with: {exc}") from exc
        torch_row = compare(name, "pytorch", reference, reference, labels)
        rows.append(torch_row)
        failures += torch_row.failures(expected)
        for runtime, per_file in logits.items():
            rows.append(compare(name, runtime, per_file[paths[name]], reference, labels))
            if runtime not in UNCHECKED:
                failures += rows[-1].failures(expected)
    print(
        f"{len(labels)} test digits, on {cpu_name()}; "
        + ", ".join(f"{runtime} {version}" for runtime, version in versions.items())
    )
    return rows, failures


def table(rows: list[Row]) -> str:
    lines = [
        "| model | runtime | accuracy | classes unlike PyTorch | largest logit difference |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.model} | {r.runtime}{' (not checked)' if r.runtime in UNCHECKED else ''} | "
        f"{100 * r.accuracy:.2f} % | {r.disagreements} | {r.max_difference:.2g} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="models to check (default: all in params)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository")
    args = parser.parse_args(argv)
    names = args.models or list(load_params(args.root / "params.yaml").models)
    rows, failures = verify(args.root, names)
    print(table(rows))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    main_of(main)
