"""The evaluate stage: a checkpoint on the test split into metrics, a confusion CSV and a
grid of the digits it got wrong."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from mnist_pipeline.core.atomic import atomic_path, write_text
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import NUM_CLASSES, SIDE
from mnist_pipeline.core.params import EvaluateParams
from mnist_pipeline.model.dataset import read_splits
from mnist_pipeline.model.inference import SplitResult, evaluate_checkpoint, open_checkpoint
from mnist_pipeline.model.nets import count_parameters
from mnist_pipeline.model.runtime import provenance

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
    fig = Figure(figsize=(columns * 1.1, rows * 1.3 + 0.3))
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

    ``validation``: the last training digits held out of training; when set, the metrics
    carry the model's accuracy on them beside the test accuracy.
    """
    loaded = open_checkpoint(checkpoint, model_name)
    if loaded.validation != validation:
        raise PipelineError(
            f"{checkpoint}: trained with {loaded.validation} validation digits held out, but "
            f"{validation} are asked for; train it again"
        )
    splits = read_splits(images_dir, validation, train=False)
    test = splits.test
    result = evaluate_checkpoint(loaded, test.images, test.labels, params.batch_size)
    metrics = compute_metrics(result, test.labels, count_parameters(loaded.model))
    if splits.validation is not None:
        held_out = evaluate_checkpoint(
            loaded, splits.validation.images, splits.validation.labels, params.batch_size
        )
        metrics["validation_accuracy"] = round(held_out.accuracy, 6)
        metrics["validation_loss"] = round(held_out.loss, 6)
        metrics["validation_images"] = validation
    device = next(loaded.model.parameters()).device
    metrics["provenance"] = {
        "train": loaded.provenance,
        "evaluate": provenance(device, torch.get_num_threads(), splits.digests()),
    }
    save_misclassified_grid(grid_path, test.images, test.labels, result, params.misclassified)
    write_text(confusion_path, confusion_csv(test.labels, result.predictions))
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    log.info("%s: accuracy %.4f, %d errors", model_name, metrics["accuracy"], metrics["errors"])
    return metrics
