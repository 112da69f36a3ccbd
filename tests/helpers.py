"""What the tests share besides fixtures: the repository's paths, params shortened for the
small data, and driving the real dvc CLI and git in a throwaway repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mnist_pipeline.core.registry import model_names

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_MNIST = Path(__file__).parent / "data" / "mnist-small"
BIN = Path(sys.executable).parent  # the virtual environment's dvc and python
# Params for a run on SMALL_MNIST that takes seconds: tiny models are still the real ones.
FAST_TRAINING = {"epochs": 3, "batch_size": 50}
# What `dvc repro` and `dvc plots` read besides the code and params (copied by make_repo)
PIPELINE_FILES = [
    "dvc.yaml",
    ".dvcignore",
    "stages",
    "src",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvc/plots",
]


def repo_params() -> dict:
    """params.yaml of the repository, as parsed YAML."""
    return yaml.safe_load((REPO_ROOT / "params.yaml").read_text())


def models() -> list[str]:
    """The models params.yaml trains: every test that loops over models loops over these."""
    return list(repo_params()["models"])


def fast_params(source: Path = SMALL_MNIST) -> dict:
    """params.yaml of the repository, pointed at ``source`` and shortened to seconds."""
    params = repo_params()
    params["data"] = {"source": str(source), "verify": False, "validation": 0}
    for model in params["models"].values():
        model.update(FAST_TRAINING)
    params["accuracy_floor"] = {name: 0.5 for name in params["models"]}
    return params


def model_stages(names: list[str] | None = None) -> set[str]:
    """What `dvc repro` runs after a change to the code every model-side stage imports."""
    names = models() if names is None else names
    per_model = {f"{stage}@{name}" for stage in ("train", "evaluate", "export") for name in names}
    return per_model | {"report"}


def stages_run(output: str) -> set[str]:
    """The stages a `dvc repro` or `dvc exp run` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def run(
    args: list[str], cwd: Path, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command with the virtual environment first on PATH; show its output on failure."""
    environ = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(cwd.parent),
        "DVC_NO_ANALYTICS": "1",
        **env,
    }
    result = subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True, check=False)
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


def make_repo(repo: Path, template: Path, params: dict | None = None) -> Path:
    """Lay this project's pipeline with the fast params in ``repo``, as a committed git repo."""
    from mnist_pipeline.tools.plots import DEFAULT_TEMPLATE

    for name in PIPELINE_FILES:
        source, target = REPO_ROOT / name, repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    (repo / DEFAULT_TEMPLATE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(template, repo / DEFAULT_TEMPLATE)
    params = fast_params() if params is None else params
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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


def assert_known_models_listed(text: str) -> None:
    """``text`` names every registered network (an error about an unknown model)."""
    assert f"known models: {', '.join(model_names())}" in text
