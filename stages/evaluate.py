"""Stage evaluate@<model>: models/<model>.pt on the test split into metrics and plots."""

from pathlib import Path

from mnist_pipeline.cli import model_argument, run_stage
from mnist_pipeline.evaluate import run_evaluation
from mnist_pipeline.models import MODELS
from mnist_pipeline.params import load_params


def main(argv: list[str]) -> None:
    params = load_params(known_models=MODELS)
    name = model_argument(argv, params.models)
    run_evaluation(
        checkpoint=Path(f"models/{name}.pt"),
        model_name=name,
        images_dir=Path("data/images"),
        params=params.evaluate,
        metrics_path=Path(f"metrics/{name}.json"),
        confusion_path=Path(f"plots/{name}/confusion.csv"),
        grid_path=Path(f"plots/{name}/misclassified.png"),
        validation=params.data.validation,
    )


if __name__ == "__main__":
    run_stage(main)
