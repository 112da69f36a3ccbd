"""Stage fetch: MNIST from ``data.source`` into data/raw/mnist_{train,test}.tar.gz."""

from pathlib import Path

from mnist_pipeline.cli import run_stage
from mnist_pipeline.fetch import fetch
from mnist_pipeline.params import load_params


def main(argv: list[str]) -> None:
    params = load_params()
    fetch(params.data, raw_dir=Path("data/raw"))


if __name__ == "__main__":
    run_stage(main)
