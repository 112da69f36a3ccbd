"""Stage report: every model compared, in plots/comparison/."""

from pathlib import Path

from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.params import load_params
from mnist_pipeline.tools.report import run_report


def main(argv: list[str]) -> None:
    params = load_params()
    run_report(
        list(params.models),
        metrics_dir=Path("metrics"),
        plots_dir=Path("plots/models"),
        out_dir=Path("plots/comparison"),
    )


if __name__ == "__main__":
    main_of(main)
