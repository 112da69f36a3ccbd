"""Stage train@<model>: models.<model> params into models/<model>.pt and its history.

The history and metrics/<model>_live.json are rewritten after every epoch; a killed run
resumes from its last finished epoch (see mnist_pipeline.resume).
"""

import logging
import sys
from pathlib import Path

from mnist_pipeline.cli import model_argument, run_stage
from mnist_pipeline.models import MODELS
from mnist_pipeline.params import Params, load_params
from mnist_pipeline.resume import default_dir
from mnist_pipeline.train import run_training


def main(argv: list[str]) -> None:
    params = load_params(known_models=MODELS)
    name = model_argument(argv, params.models)
    try:
        train(name, params)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished epochs are not lost
        logging.getLogger("stage").error(
            "interrupted: no checkpoint was written; the history so far and the resume "
            "state are kept, and the next run resumes from the last finished epoch"
        )
        sys.exit(130)


def train(name: str, params: Params) -> None:
    run_training(
        name,
        params.models[name],
        images_dir=Path("data/images"),
        checkpoint=Path(f"models/{name}.pt"),
        history_path=Path(f"plots/{name}/history.csv"),
        validation=params.data.validation,
        live_metrics_path=Path(f"metrics/{name}_live.json"),
        resume_dir=default_dir(),
        eval_batch_size=params.evaluate.batch_size,
    )


if __name__ == "__main__":
    run_stage(main)
