"""Stage export@<model>: models/<model>.pt into models/onnx/<model>.onnx, checked on the
test split."""

from pathlib import Path

from mnist_pipeline.core.entry import main_of, model_argument
from mnist_pipeline.core.params import load_params
from mnist_pipeline.model.export import run_export


def main(argv: list[str]) -> None:
    params = load_params()
    name = model_argument(argv, params.models)
    run_export(
        checkpoint=Path(f"models/{name}.pt"),
        model_name=name,
        images_dir=Path("data/images"),
        onnx_path=Path(f"models/onnx/{name}.onnx"),
        metrics_path=Path(f"metrics/{name}-onnx.json"),
        batch_size=params.evaluate.batch_size,
    )


if __name__ == "__main__":
    main_of(main)
