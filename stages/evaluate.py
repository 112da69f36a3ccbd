"""Stage evaluate@<model>: models/<model>.pt on the test split into metrics and plots."""

from pathlib import Path

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.evaluate import run_evaluation
from mnist_pipeline.params import load_params
from mnist_pipeline.stage import run_stage


def main(argv: list[str]) -> None:
    params = load_params()
    if len(argv) != 1 or argv[0] not in params.models:
        raise PipelineError(
            f"usage: {Path(__file__).name} MODEL, one of: {', '.join(params.models)}"
        )
    name = argv[0]
    run_evaluation(
        checkpoint=Path(f"models/{name}.pt"),
        model_name=name,
        images_dir=Path("data/images"),
        params=params.evaluate,
        metrics_path=Path(f"metrics/{name}.json"),
        confusion_path=Path(f"plots/{name}/confusion.csv"),
        grid_path=Path(f"plots/{name}/misclassified.png"),
    )


if __name__ == "__main__":
    run_stage(main)
