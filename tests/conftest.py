"""Shared fixtures: a small slice of real MNIST (1,000 train, 500 test digits) in every
form the pipeline reads, and a throwaway copy of the repository for driving the dvc CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mnist_pipeline.dataset import DigitFolder
from mnist_pipeline.extract import extract
from mnist_pipeline.fetch import fetch
from mnist_pipeline.params import DataParams
from mnist_pipeline.sources import Splits, from_directory

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_MNIST = Path(__file__).parent / "data" / "mnist-small"
BIN = Path(sys.executable).parent  # the virtual environment's dvc and python

# Params for a run on SMALL_MNIST that takes seconds: tiny models are still the real ones.
FAST_TRAINING = {"epochs": 3, "batch_size": 50}


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
    return DigitFolder(small_images / "train")


def fast_params(source: Path = SMALL_MNIST) -> dict:
    """params.yaml of the repository, pointed at ``source`` and shortened to seconds."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["data"] = {"source": str(source), "verify": False, "validation": 0}
    for model in params["models"].values():
        model.update(FAST_TRAINING)
    params["accuracy_floor"] = {name: 0.5 for name in params["models"]}
    return params


# What `dvc repro` runs after a change to the code every model-side stage imports
MODEL_STAGES = {
    "train@lenet5",
    "train@mlp",
    "evaluate@lenet5",
    "evaluate@mlp",
    "export@lenet5",
    "export@mlp",
    "report",
}


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with the virtual environment first on PATH; show its output on failure."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd.parent), "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def experiments(repo: Path) -> dict[str, dict]:
    """``dvc exp show --json`` as {experiment name or rev: its params and metrics}, the
    baseline's included."""
    rows = {}
    for row in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout):
        rows[row["name"] or row["rev"]] = row["data"]
        for experiment in row.get("experiments") or []:
            for rev in experiment["revs"]:
                rows[rev["name"] or rev["rev"]] = rev["data"]
    return rows


@pytest.fixture(scope="session")
def plots_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline plots template `make plots-template` writes (generated, gitignored)."""
    from mnist_pipeline.plots import write_template

    return write_template(tmp_path_factory.mktemp("vendor") / "offline-plots.html")


def make_repo(repo: Path, template: Path) -> Path:
    """Lay this project's pipeline with the fast params in ``repo``, as a committed git repo."""
    from mnist_pipeline.plots import DEFAULT_TEMPLATE

    for name in [
        "dvc.yaml",
        ".dvcignore",
        "stages",
        "src",
        ".dvc/config",
        ".dvc/.gitignore",
        ".dvc/plots",
    ]:
        source = REPO_ROOT / name
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    (repo / DEFAULT_TEMPLATE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, repo / DEFAULT_TEMPLATE)
    (repo / "params.yaml").write_text(yaml.safe_dump(fast_params(), sort_keys=False))
    (repo / ".gitignore").write_text("/data/\n/models/\n/dvc_plots/\n/vendor/\n")
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@example.com"], repo)
    run(["git", "config", "user.name", "test"], repo)
    commit_all(repo, "pipeline")
    return repo


def commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", message], repo)


def copy_repo(source: Path, target: Path) -> Path:
    """A copy of a repository, its git history, DVC cache and workspace included."""
    shutil.copytree(source, target, symlinks=True)
    return target


@pytest.fixture
def repo_copy(tmp_path: Path, plots_template: Path) -> Path:
    """A git + DVC repository holding this project's pipeline and the fast params."""
    return make_repo(tmp_path / "repo", plots_template)


@pytest.fixture(scope="session")
def reproduced_repo(
    tmp_path_factory: pytest.TempPathFactory, plots_template: Path
) -> tuple[Path, str]:
    """A repo whose first `dvc repro` ran and was committed on main, with that run's output.

    Shared by the tests that need a trained pipeline: each works on a :func:`copy_repo`.
    """
    repo = make_repo(tmp_path_factory.mktemp("reproduced") / "repo", plots_template)
    first = run(["dvc", "repro"], repo)
    commit_all(repo, "pipeline results")
    return repo, first.stdout
