"""onnxruntime against PyTorch: each model over the 10,000 test digits, in one process.

    python benchmarks/bench_onnx.py [--images data/images] [--models models] [--repeats 5]

Both start from the raw uint8 pixels in memory and end with logits: PyTorch runs the
evaluate stage's path (``run_split``: deskew and normalise in ``BatchTransform``, then the
model in channels-last layout), onnxruntime runs ``models/<model>.onnx``, which does all
of it in its graph. Both use batches of 1,000 and as many threads as the process has
cores. Prints the fastest
and the median of ``--repeats`` rounds for each, side by side.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchlib import REPO_ROOT, bench_parser, machine_line, median, timed
from mnist_pipeline.formats.onnxfile import OnnxModel, open_model
from mnist_pipeline.model.checkpoint import load_checkpoint
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.inference import evaluate_checkpoint, ready
from mnist_pipeline.model.runtime import make_deterministic

BATCH = 1000


def run(images_dir: Path, models_dir: Path, repeats: int) -> list[dict]:
    """Per model with both files in ``models_dir``: each runtime's fastest and median time."""
    make_deterministic()  # as the evaluate stage: deterministic kernels, all cores
    test_set = DigitFolder.read(images_dir / "test")
    pixels, cpu = test_set.images.numpy(), torch.device("cpu")
    rows = []
    for onnx_path in sorted(models_dir.glob("*.onnx")):
        exported = open_model(onnx_path, threads=torch.get_num_threads())
        loaded = load_checkpoint(models_dir / f"{exported.name}.pt", exported.name)
        loaded = ready(loaded, cpu)

        def with_torch(loaded=loaded) -> None:
            evaluate_checkpoint(loaded, test_set.images, test_set.labels, BATCH)

        def with_onnx(exported: OnnxModel = exported) -> None:
            exported.logits(pixels, BATCH)

        times = {"pytorch": [], "onnxruntime": []}
        for _ in range(repeats):  # alternate, so both see the same load on a shared machine
            times["pytorch"].append(timed(with_torch))
            times["onnxruntime"].append(timed(with_onnx))
        rows.append(
            {
                "model": exported.name,
                "digits": len(pixels),
                **{f"{k}_fastest_s": min(v) for k, v in times.items()},
                **{f"{k}_median_s": median(v) for k, v in times.items()},
            }
        )
    return rows


def main() -> None:
    parser = bench_parser(__doc__, "images")
    parser.add_argument("--models", type=Path, default=REPO_ROOT / "models")
    parser.set_defaults(repeats=5)
    args = parser.parse_args()
    print(machine_line())
    print(f"{'model':8} {'digits':>6}  {'PyTorch (s)':>18}  {'onnxruntime (s)':>18}  ratio")
    print(f"{'':8} {'':>6}  {'fastest / median':>18}  {'fastest / median':>18}")
    for row in run(args.images, args.models, args.repeats):
        ratio = row["pytorch_fastest_s"] / row["onnxruntime_fastest_s"]
        print(
            f"{row['model']:8} {row['digits']:>6}  "
            f"{row['pytorch_fastest_s']:>8.3f} / {row['pytorch_median_s']:<7.3f}  "
            f"{row['onnxruntime_fastest_s']:>8.3f} / {row['onnxruntime_median_s']:<7.3f}  "
            f"{ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
