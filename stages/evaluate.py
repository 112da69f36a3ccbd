"""Stage evaluate@<model>: models/<model>.pt on the test split into metrics and plots."""

from pathlib import Path

from mnist_pipeline.core.entry import main_of, model_argument
from mnist_pipeline.core.params import load_params
from mnist_pipeline.model.evaluate import run_evaluation


def main(argv: list[str]) -> None:
    params = load_params()
    name = model_argument(argv, params.models)
    run_evaluation(
        checkpoint=Path(f"models/{name}.pt"),
        model_name=name,
        images_dir=Path("data/images"),
        params=params.evaluate,
        metrics_path=Path(f"metrics/{name}.json"),
        confusion_path=Path(f"plots/models/{name}/confusion.csv"),
        grid_path=Path(f"plots/models/{name}/misclassified.png"),
        validation=params.data.validation,
    )


if __name__ == "__main__":
    main_of(main)
