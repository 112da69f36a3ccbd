"""Shared fixtures: a small slice of real MNIST (1,000 train, 500 test digits) in every
form the pipeline reads, and throwaway repositories for driving the dvc CLI. Helpers that
are not fixtures live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import SMALL_MNIST, commit_all, make_repo, run
from mnist_pipeline.core.params import DataParams
from mnist_pipeline.data.extract import extract
from mnist_pipeline.data.fetch import fetch
from mnist_pipeline.data.sources import Splits, from_directory
from mnist_pipeline.model.dataset import DigitFolder


@pytest.fixture(scope="session")
def small_splits() -> Splits:
    """The small slice as arrays, read from its IDX files."""
    return from_directory(SMALL_MNIST)


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the small slice as the fetch stage's two tarballs."""
    raw = tmp_path_factory.mktemp("raw")
    fetch(DataParams(source=str(SMALL_MNIST), verify=False), raw)
    return raw


@pytest.fixture(scope="session")
def small_images(tmp_path_factory: pytest.TempPathFactory, small_raw: Path) -> Path:
    """The small slice extracted into <split>/<label>/<index>.png folders."""
    images = tmp_path_factory.mktemp("extracted") / "images"
    extract(small_raw, images, verify=False)
    return images


@pytest.fixture(scope="module")
def train_set(small_images: Path) -> DigitFolder:
    """The small slice's training split, as the train stage reads it."""
    return DigitFolder.read(small_images / "train")


@pytest.fixture(scope="session")
def plots_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline plots template `make plots-template` writes (generated, gitignored)."""
    from mnist_pipeline.tools.plots import write_template

    return write_template(tmp_path_factory.mktemp("vendor") / "offline-plots.html")


@pytest.fixture
def repo_copy(tmp_path: Path, plots_template: Path) -> Path:
    """A git + DVC repository holding this project's pipeline and the fast params."""
    return make_repo(tmp_path / "repo", plots_template)


@pytest.fixture(scope="session")
def reproduced_repo(
    tmp_path_factory: pytest.TempPathFactory, plots_template: Path
) -> tuple[Path, str]:
    """A repo whose first `dvc repro` ran and was committed on main, with that run's output.

    Shared by the tests that need a trained pipeline: each works on a copy (copy_repo).
    """
    repo = make_repo(tmp_path_factory.mktemp("reproduced") / "repo", plots_template)
    first = run(["dvc", "repro"], repo)
    commit_all(repo, "pipeline results")
    return repo, first.stdout
