"""The evaluate stage: a checkpoint on the test split into metrics, a confusion CSV and a
grid of the digits it got wrong."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mnist_pipeline.atomic import atomic_path, write_text  # noqa: E402
from mnist_pipeline.checkpoint import load_checkpoint  # noqa: E402
from mnist_pipeline.dataset import DigitFolder  # noqa: E402
from mnist_pipeline.errors import PipelineError  # noqa: E402
from mnist_pipeline.inference import SplitResult, channels_last, run_split  # noqa: E402
from mnist_pipeline.mnist import NUM_CLASSES, SIDE  # noqa: E402
from mnist_pipeline.models import count_parameters  # noqa: E402
from mnist_pipeline.params import EvaluateParams  # noqa: E402
from mnist_pipeline.runtime import make_deterministic, pick_device, provenance  # noqa: E402

log = logging.getLogger(__name__)


def compute_metrics(result: SplitResult, labels: torch.Tensor, num_parameters: int) -> dict:
    """Accuracy, loss, error count, parameter count and per-class precision and recall."""
    predictions = result.predictions
    per_class = {}
    for digit in range(NUM_CLASSES):
        true_positive = int(((predictions == digit) & (labels == digit)).sum())
        predicted = int((predictions == digit).sum())
        actual = int((labels == digit).sum())
        per_class[str(digit)] = {
            "precision": round(true_positive / predicted, 6) if predicted else 0.0,
            "recall": round(true_positive / actual, 6) if actual else 0.0,
        }
    return {
        "accuracy": round(result.accuracy, 6),
        "loss": round(result.loss, 6),
        "errors": int((predictions != labels).sum()),
        "test_images": len(labels),
        "parameters": num_parameters,
        "per_class": per_class,
    }


def confusion_csv(labels: torch.Tensor, predictions: torch.Tensor) -> str:
    rows = [f"{int(a)},{int(p)}" for a, p in zip(labels, predictions, strict=True)]
    return "actual,predicted\n" + "\n".join(rows) + "\n"


def save_misclassified_grid(
    path: Path, images: torch.Tensor, labels: torch.Tensor, result: SplitResult, limit: int
) -> None:
    """A PNG grid of the first ``limit`` misclassified digits, titled true -> predicted.

    The tiles are one image on one axes, each with a text label above it: a subplot per
    digit would make matplotlib's layout cost more than the evaluation itself.
    """
    predictions = result.predictions
    probabilities = result.logits.softmax(dim=1)
    wrong = (predictions != labels).nonzero().flatten()[:limit].tolist()
    columns = max(1, min(9, len(wrong)))
    rows = max(1, -(-len(wrong) // columns))
    cell_w, cell_h = SIDE + 6, SIDE + 14  # a tile, its margin and the band for its label
    mosaic = np.zeros((rows * cell_h, columns * cell_w), dtype=np.uint8)
    fig = plt.figure(figsize=(columns * 1.1, rows * 1.3 + 0.3))
    ax = fig.add_axes((0.0, 0.0, 1.0, rows * 1.3 / (rows * 1.3 + 0.3)))
    for slot, index in enumerate(wrong):
        top, left = (slot // columns) * cell_h + 12, (slot % columns) * cell_w + 3
        mosaic[top : top + SIDE, left : left + SIDE] = images[index, 0].numpy()
        confidence = probabilities[index, predictions[index]].item()
        label = f"{int(labels[index])}→{int(predictions[index])} {confidence:.0%}"
        ax.text(left + SIDE / 2, top - 2, label, fontsize=8, ha="center", va="bottom")
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    ax.set_aspect("auto")
    ax.axis("off")
    fig.suptitle(f"{len(wrong)} misclassified (true→predicted)", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)


def run_evaluation(
    checkpoint: Path,
    model_name: str,
    images_dir: Path,
    params: EvaluateParams,
    metrics_path: Path,
    confusion_path: Path,
    grid_path: Path,
    validation: int = 0,
) -> dict:
    """The evaluate stage: write metrics JSON, confusion CSV and misclassified grid.

    ``validation``: the last training digits held out of training (``data.validation``);
    when set, the metrics carry the model's accuracy on them beside the test accuracy.
    """
    loaded = load_checkpoint(checkpoint, expected_model=model_name)
    if loaded.validation != validation:
        raise PipelineError(
            f"{checkpoint}: trained with data.validation {loaded.validation}, but params.yaml "
            f"says {validation}; retrain it: dvc repro train@{model_name}"
        )
    make_deterministic()
    device = pick_device()
    test_set = DigitFolder(images_dir / "test")
    model = channels_last(loaded.model.to(device))
    result = run_split(
        model, test_set.images, test_set.labels, params.batch_size, device, loaded.deskew
    )
    metrics = compute_metrics(result, test_set.labels, count_parameters(model))
    data = {"test": test_set.sha256}
    if validation:
        train_set = DigitFolder(images_dir / "train")
        validation_set = train_set.hold_out(validation)[1]
        held_out = run_split(
            model,
            validation_set.images,
            validation_set.labels,
            params.batch_size,
            device,
            loaded.deskew,
        )
        metrics["validation_accuracy"] = round(held_out.accuracy, 6)
        metrics["validation_loss"] = round(held_out.loss, 6)
        metrics["validation_images"] = validation
        data["train"] = train_set.sha256
    metrics["provenance"] = {
        "train": loaded.provenance,
        "evaluate": provenance(device, torch.get_num_threads(), data),
    }
    save_misclassified_grid(
        grid_path, test_set.images, test_set.labels, result, params.misclassified
    )
    write_text(confusion_path, confusion_csv(test_set.labels, result.predictions))
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    log.info("%s: accuracy %.4f, %d errors", model_name, metrics["accuracy"], metrics["errors"])
    return metrics
