"""Stage train@<model>: models.<model> params into models/<model>.pt and its history.

The history and metrics/<model>_live.json are rewritten after every epoch; a killed run
resumes from its last finished epoch (see mnist_pipeline.model.resume).
"""

import logging
from pathlib import Path

from mnist_pipeline.core.entry import main_of, model_argument
from mnist_pipeline.core.params import load_params
from mnist_pipeline.model.resume import default_dir
from mnist_pipeline.model.train import run_training


def main(argv: list[str]) -> None:
    params = load_params()
    name = model_argument(argv, params.models)
    try:
        run_training(
            name,
            params.models[name],
            images_dir=Path("data/images"),
            checkpoint=Path(f"models/{name}.pt"),
            history_path=Path(f"plots/models/{name}/history.csv"),
            validation=params.data.validation,
            live_metrics_path=Path(f"metrics/{name}_live.json"),
            resume_dir=default_dir(),
            eval_batch_size=params.evaluate.batch_size,
        )
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finished epochs are not lost
        logging.getLogger("stage").error(
            "no checkpoint was written; the history so far and the resume state are kept, "
            "and the next run resumes from the last finished epoch"
        )
        raise


if __name__ == "__main__":
    main_of(main)
