"""Stage export@<model>: models/<model>.pt into models/<model>.onnx, checked on the test split."""

from pathlib import Path

from mnist_pipeline.cli import model_argument, run_stage
from mnist_pipeline.export import run_export
from mnist_pipeline.params import load_params


def main(argv: list[str]) -> None:
    params = load_params()
    name = model_argument(argv, params.models)
    run_export(
        checkpoint=Path(f"models/{name}.pt"),
        model_name=name,
        images_dir=Path("data/images"),
        onnx_path=Path(f"models/{name}.onnx"),
        metrics_path=Path(f"metrics/{name}-onnx.json"),
        batch_size=params.evaluate.batch_size,
    )


if __name__ == "__main__":
    run_stage(main)
