"""Stage fetch: MNIST from ``data.source`` into data/raw/mnist_{train,test}.tar.gz."""

from pathlib import Path

from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.params import load_params
from mnist_pipeline.data.fetch import fetch


def main(argv: list[str]) -> None:
    params = load_params()
    fetch(params.data, raw_dir=Path("data/raw"))


if __name__ == "__main__":
    main_of(main)
