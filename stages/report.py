"""Stage report: comparison figures in plots/comparison/ and metrics/summary.md."""

from pathlib import Path

from mnist_pipeline.cli import run_stage
from mnist_pipeline.params import load_params
from mnist_pipeline.report import run_report


def main(argv: list[str]) -> None:
    params = load_params()
    run_report(
        list(params.models),
        metrics_dir=Path("metrics"),
        plots_dir=Path("plots"),
        out_dir=Path("plots/comparison"),
        summary_path=Path("metrics/summary.md"),
    )


if __name__ == "__main__":
    run_stage(main)
