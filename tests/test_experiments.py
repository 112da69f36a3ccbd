"""Experiments at scale through the real dvc CLI on the small data: an experiment shared
between two clones (a bare git repository and a directory DVC remote), and a queued sweep
whose workers share the cores, one of its experiments failing on a bad param."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, copy_repo, experiments, run, stages_run
from mnist_pipeline.model.runtime import WORKERS_ENV, machine_cores

pytestmark = pytest.mark.slow


def test_exp_push_then_pull_into_another_clone_retrains_nothing(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)
    first = copy_repo(reproduced_repo[0], tmp_path / "first")
    run(["dvc", "remote", "add", "-d", "store", str(tmp_path / "store")], first)
    run(["git", "commit", "-qam", "a DVC remote"], first)
    run(["git", "remote", "add", "origin", str(origin)], first)
    run(["git", "push", "-q", "origin", "main"], first)
    # what each job of the sweep workflow runs (`make experiment`): run, then exp push
    job = ["python", "-m", "mnist_pipeline.tools.sweep", "shared-mlp", "models.mlp.epochs=1"]
    pushed = run([*job, "--push", "origin"], first)
    assert "pushed experiment shared-mlp to origin" in pushed.stderr, pushed.stderr
    assert (tmp_path / "store").is_dir()  # outputs went to the DVC remote

    second = tmp_path / "second"
    run(["git", "clone", "-q", str(origin), str(second)], tmp_path)
    run(["dvc", "exp", "pull", "origin", "shared-mlp"], second)
    shown = experiments(second)["shared-mlp"]
    assert shown["params"]["params.yaml"]["data"]["models"]["mlp"]["epochs"] == 1
    accuracy = json.loads((first / "metrics/mlp.json").read_text())["accuracy"]
    assert shown["metrics"]["metrics/mlp.json"]["data"]["accuracy"] == accuracy

    run(["dvc", "exp", "apply", "shared-mlp"], second)
    run(["dvc", "checkout"], second)  # the checkpoints, from the DVC remote through exp pull
    for name in ("models/mlp.pt", "models/lenet5.pt", "metrics/mlp.json"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    # nothing is retrained: only the image folder (not cached) is rebuilt from the tarballs
    assert stages_run(run(["dvc", "repro"], second).stdout) == {"extract"}

    missing = run(["dvc", "exp", "pull", "origin", "no-such-experiment"], second, check=False)
    assert missing.returncode != 0
    message = missing.stderr + missing.stdout
    assert "'no-such-experiment' is not a valid experiment name" in message, message


def queue_env(home: Path, workers: int) -> dict[str, str]:
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "DVC_NO_ANALYTICS": "1",
        WORKERS_ENV: str(workers),
    }


def test_queue_workers_share_the_cores_and_a_failing_experiment_loses_no_other(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo = copy_repo(reproduced_repo[0], tmp_path / "repo")
    sweep = ["-S", "models.lenet5.epochs=1", "-S", "models.lenet5.seed=1,2"]
    run(["dvc", "exp", "run", "--queue", *sweep], repo)
    bad = ["-n", "bad-optimizer", "-S", "models.lenet5.optimizer=adam"]
    run(["dvc", "exp", "run", "--queue", *bad], repo)
    # the workers outlive `dvc queue start` and hold its output: leave it uncaptured
    subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        env=queue_env(tmp_path, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    deadline = time.monotonic() + 600
    while re.search(r"Queued|Running", status := run(["dvc", "queue", "status"], repo).stdout):
        assert time.monotonic() < deadline, f"queue not done in 10 minutes:\n{status}"
        time.sleep(2)
    assert status.count("Success") == 2 and status.count("Failed") == 1, status

    failed_log = run(["dvc", "queue", "logs", "bad-optimizer"], repo, check=False).stdout
    assert "models.lenet5.optimizer" in failed_log, failed_log  # the stage's clear error

    share = max(1, machine_cores() // 2)
    rows = {n: d for n, d in experiments(repo).items() if n not in ("workspace", "main")}
    seeds = set()
    for name, data in rows.items():
        metrics = data.get("metrics", {}).get("metrics/lenet5.json", {}).get("data")
        if not metrics or data["params"]["params.yaml"]["data"]["models"]["lenet5"]["epochs"] != 1:
            continue
        seeds.add(data["params"]["params.yaml"]["data"]["models"]["lenet5"]["seed"])
        assert metrics["provenance"]["train"]["threads"] == share, name
        assert metrics["provenance"]["evaluate"]["threads"] == share, name
        log = run(["dvc", "queue", "logs", name], repo).stdout
        assert len(re.findall(r"lenet5 epoch \d+/1: train loss", log)) == 1, log
        assert f"{share} thread(s)" in log
        assert "it/s]" not in log and "epoch/s]" not in log  # no progress bar in the log
    assert seeds == {1, 2}
