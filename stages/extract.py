"""Stage extract: the tarballs into data/images/<split>/<label>/<index>.png."""

from pathlib import Path

from mnist_pipeline.cli import run_stage
from mnist_pipeline.extract import extract
from mnist_pipeline.params import load_params


def main(argv: list[str]) -> None:
    params = load_params()
    extract(raw_dir=Path("data/raw"), images_dir=Path("data/images"), verify=params.data.verify)


if __name__ == "__main__":
    run_stage(main)
