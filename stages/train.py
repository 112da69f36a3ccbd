"""Stage train@<model>: models.<model> params into models/<model>.pt and its history.

The history and metrics/<model>_live.json are rewritten after every epoch; a killed run
resumes from its last finished epoch (see mnist_pipeline.resume).
"""

from pathlib import Path

from mnist_pipeline.models import MODELS
from mnist_pipeline.params import load_params
from mnist_pipeline.resume import default_dir
from mnist_pipeline.stage import model_argument, run_stage
from mnist_pipeline.train import run_training


def main(argv: list[str]) -> None:
    params = load_params(known_models=MODELS)
    name = model_argument(argv, params.models)
    run_training(
        name,
        params.models[name],
        images_dir=Path("data/images"),
        checkpoint=Path(f"models/{name}.pt"),
        history_path=Path(f"plots/{name}/history.csv"),
        validation=params.data.validation,
        live_metrics_path=Path(f"metrics/{name}_live.json"),
        resume_dir=default_dir(),
    )


if __name__ == "__main__":
    run_stage(main)
