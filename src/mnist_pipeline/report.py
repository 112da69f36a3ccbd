"""The report stage: figures comparing the models' training curves, and a summary table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from mnist_pipeline.atomic import atomic_path, write_text  # noqa: E402
from mnist_pipeline.errors import PipelineError  # noqa: E402

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
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for color, (name, history) in zip(plt.cm.tab10.colors, histories.items(), strict=False):
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
    plt.close(fig)


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


def run_report(
    models: list[str], metrics_dir: Path, plots_dir: Path, out_dir: Path, summary_path: Path
) -> None:
    """Draw accuracy and loss comparisons into ``out_dir`` and write the summary table."""
    histories = {name: read_history(plots_dir / name / "history.csv") for name in models}
    metrics = {name: read_metrics(metrics_dir / f"{name}.json") for name in models}
    for metric in ("accuracy", "loss"):
        plot_curves(histories, metric, out_dir / f"{metric}.png")
    write_text(summary_path, "# Test-set results\n\n" + summary_table(metrics))
    log.info("wrote %s and the comparison figures in %s", summary_path, out_dir)
