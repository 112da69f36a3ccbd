"""Stage extract: the tarballs into data/images/<split>/<label>/<index>.png."""

from pathlib import Path

from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.params import load_params
from mnist_pipeline.data.extract import extract


def main(argv: list[str]) -> None:
    params = load_params()
    extract(raw_dir=Path("data/raw"), images_dir=Path("data/images"), verify=params.data.verify)


if __name__ == "__main__":
    main_of(main)
