"""The evaluation goal: evaluating a model on the 10,000 test images.

    python benchmarks/bench_eval.py [--images data/images] [--repeats 3]

Times ``run_evaluation``, the evaluate stage's whole job (load the checkpoint, decode the
10,000 test PNGs, run the model, write the metrics, the confusion CSV and the grid of
misclassified digits), per model, against the 2 s limit; and, for scale, ``run_split``
alone: the model over the test images already in memory. The checkpoint is
``models/<model>.pt`` when the pipeline has made one, else a freshly initialized model of
the same architecture (the same arithmetic). Figures are medians over repeats.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchlib import REPO_ROOT, Result, bench_parser, limit, median, show, timed
from mnist_pipeline.core.params import Params, load_params
from mnist_pipeline.model.checkpoint import load_checkpoint, save_checkpoint
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.evaluate import run_evaluation
from mnist_pipeline.model.inference import evaluate_checkpoint, ready
from mnist_pipeline.model.nets import build_model

GOAL = "evaluation"
LIMIT_S = 2.0


def checkpoint_for(name: str, params: Params, folder: Path) -> tuple[Path, str]:
    """The pipeline's checkpoint of ``name`` if there is one, else an untrained one."""
    trained = REPO_ROOT / "models" / f"{name}.pt"
    if trained.exists():
        return trained, "trained"
    path = folder / f"{name}.pt"
    torch.manual_seed(0)
    recipe = params.models[name]
    save_checkpoint(path, name, build_model(name, recipe.net), recipe, {})
    return path, "untrained"


def run(images_dir: Path, params: Params, repeats: int) -> list[Result]:
    test_set = DigitFolder.read(images_dir / "test")
    cpu, batch = torch.device("cpu"), params.evaluate.batch_size
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        out = Path(tmp)
        for name in params.models:
            checkpoint, kind = checkpoint_for(name, params, out)

            def evaluate(checkpoint: Path = checkpoint, name: str = name) -> None:
                run_evaluation(
                    checkpoint,
                    name,
                    images_dir,
                    params.evaluate,
                    out / "metrics.json",
                    out / "confusion.csv",
                    out / "misclassified.png",
                )

            stage = median([timed(evaluate) for _ in range(repeats)])
            loaded = load_checkpoint(checkpoint)
            loaded = ready(loaded, cpu)

            def forward(loaded=loaded) -> None:
                evaluate_checkpoint(loaded, test_set.images, test_set.labels, batch)

            forward_s = median([timed(forward) for _ in range(repeats)])
            what = f"{name} ({kind})"
            results.append(limit(GOAL, f"{what}: run_evaluation, 10,000 images", stage, LIMIT_S))
            results.append(
                limit(GOAL, f"{what}: evaluate_checkpoint, images in memory", forward_s, LIMIT_S)
            )
    return results


def main() -> None:
    args = bench_parser(__doc__, "images", "params").parse_args()
    show(run(args.images, load_params(args.params), args.repeats))


if __name__ == "__main__":
    main()
