"""The report stage: every model's training curves side by side, as figures and as one
long-format CSV for ``dvc plots``, and a summary table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from mnist_pipeline.core.atomic import atomic_path, write_text
from mnist_pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)


def read_history(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise PipelineError(f"{path}: cannot read training history: {exc}") from exc


def read_metrics(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read metrics: {exc}") from exc


def plot_curves(histories: dict[str, pd.DataFrame], metric: str, path: Path) -> None:
    """Train (dashed) and test (solid) ``metric`` per epoch, one colour per model.

    Accuracy is drawn as error rate on a log scale, where 1 % and 0.5 % are far apart.
    """
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for color, (name, history) in zip(colormaps["tab10"].colors, histories.items(), strict=False):
        for split, style in (("train", "--"), ("test", "-")):
            values = history[f"{split}_{metric}"]
            if metric == "accuracy":
                values = (1 - values) * 100
            ax.plot(history.epoch, values, style, color=color, label=f"{name} {split}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)" if metric == "accuracy" else "cross-entropy")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("error rate per epoch" if metric == "accuracy" else "loss per epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def summary_table(metrics: dict[str, dict]) -> str:
    """A markdown table of each model's headline metrics."""
    lines = [
        "| model | parameters | test accuracy | test errors | test loss |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in metrics.items():
        lines.append(
            f"| {name} | {m['parameters']:,} | {m['accuracy']:.2%} | {m['errors']} "
            f"| {m['loss']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def long_history(histories: dict[str, pd.DataFrame]) -> str:
    """Every model's history as one CSV, a row per model, epoch and split: what the
    comparison plots of ``dvc plots show`` draw, coloured by model."""
    rows = []
    for name, history in histories.items():
        for split in ("train", "test"):
            part = pd.DataFrame(
                {
                    "model": name,
                    "epoch": history.epoch,
                    "split": split,
                    "error_rate": (1 - history[f"{split}_accuracy"]).round(6),
                    "loss": history[f"{split}_loss"],
                }
            )
            rows.append(part)
    return pd.concat(rows).to_csv(index=False, lineterminator="\n")


def run_report(models: list[str], metrics_dir: Path, plots_dir: Path, out_dir: Path) -> None:
    """Draw accuracy and loss comparisons into ``out_dir``, with the long-format history and
    the summary table beside them. ``plots_dir/<model>/history.csv``: each model's history."""
    histories = {name: read_history(plots_dir / name / "history.csv") for name in models}
    metrics = {name: read_metrics(metrics_dir / f"{name}.json") for name in models}
    for metric in ("accuracy", "loss"):
        plot_curves(histories, metric, out_dir / f"{metric}.png")
    write_text(out_dir / "history.csv", long_history(histories))
    write_text(out_dir / "summary.md", "# Test-set results\n\n" + summary_table(metrics))
    log.info("wrote the comparison figures, history and summary in %s", out_dir)
