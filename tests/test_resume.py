"""Live history and resuming: the train stage shows its epochs as it goes, and a run killed
with SIGKILL goes on from its last finished epoch to the same bytes as an unbroken run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from helpers import BIN, REPO_ROOT, fast_params
from mnist_pipeline.core.params import ModelParams, parse_params
from mnist_pipeline.model import resume
from mnist_pipeline.model.dataset import Splits, read_splits
from mnist_pipeline.model.resume import load_state
from mnist_pipeline.model.train import train_model

EPOCHS = 6
KILL_AFTER = 3  # finished epochs the history shows when the stage is killed
# one core: one thread, so both runs take the same kernels whatever else the machine runs
ONE_CORE = ["taskset", "-c", str(max(os.sched_getaffinity(0)))]
OUTPUTS = ["models/lenet5.pt", "plots/models/lenet5/history.csv", "metrics/lenet5_live.json"]
STATE = ".dvc/tmp/resume/lenet5.pt"


def workspace(root: Path, small_images: Path) -> Path:
    """A directory laid out as the train stage expects, with the small data and params."""
    root.mkdir()
    (root / ".dvc").mkdir()
    (root / "data").mkdir()
    (root / "data" / "images").symlink_to(small_images)
    params = fast_params()
    params["models"]["lenet5"].update(epochs=EPOCHS, batch_size=20)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def train_stage(cwd: Path) -> subprocess.Popen[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd.parent)}
    return subprocess.Popen(
        [*ONE_CORE, str(BIN / "python"), str(REPO_ROOT / "stages/train.py"), "lenet5"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def rows(path: Path) -> int:
    """Epoch rows in a history file, 0 while there is none."""
    return max(0, len(path.read_text().splitlines()) - 1) if path.exists() else 0


def digests(root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.mark.slow
def test_sigkilled_stage_resumes_to_the_bytes_of_an_unbroken_run(
    tmp_path: Path, small_images: Path
) -> None:
    unbroken = workspace(tmp_path / "unbroken", small_images)
    stage = train_stage(unbroken)
    output, _ = stage.communicate(timeout=600)
    assert stage.returncode == 0, output
    assert "resumed" not in output

    broken = workspace(tmp_path / "broken", small_images)
    stage = train_stage(broken)
    history = broken / "plots/models/lenet5/history.csv"
    seen = []  # the history's row counts while the stage runs: it grows epoch by epoch
    deadline = time.monotonic() + 600
    while (count := rows(history)) < KILL_AFTER:
        assert stage.poll() is None, stage.communicate()[0]
        assert time.monotonic() < deadline, "no history rows in 10 minutes"
        if not seen or seen[-1] != count:
            seen.append(count)
        time.sleep(0.01)
    stage.send_signal(signal.SIGKILL)  # as a preempted VM: no handler runs
    output, _ = stage.communicate(timeout=60)
    assert stage.returncode == -signal.SIGKILL
    killed_at = rows(history)
    assert KILL_AFTER <= killed_at < EPOCHS, output  # killed mid-run, history kept so far
    assert seen[-1] < KILL_AFTER and set(seen) <= set(range(KILL_AFTER))
    live = json.loads((broken / "metrics/lenet5_live.json").read_text())
    assert live["epoch"] == killed_at and live["epochs"] == EPOCHS
    assert not (broken / "models/lenet5.pt").exists()
    assert (broken / STATE).exists()

    stage = train_stage(broken)
    output, _ = stage.communicate(timeout=600)
    assert stage.returncode == 0, output
    assert output.count(f"lenet5: resumed at epoch {killed_at} of {EPOCHS}") == 1, output
    assert f"lenet5 epoch {killed_at}/{EPOCHS}" not in output  # finished epochs not rerun
    assert not (broken / STATE).exists()  # removed once the outputs are written
    expected, got = digests(unbroken), digests(broken)
    print("sha256 unbroken:", expected, "\nsha256 resumed:", got)
    assert got == expected


@pytest.fixture(scope="module")
def datasets(small_images: Path) -> Splits:
    return read_splits(small_images)


def recipe(**changes: object) -> ModelParams:
    return parse_params(fast_params()).models["mlp"].model_copy(update=changes)


class Killed(Exception):
    """Stands for a kill right after an epoch's state was saved."""


def kill_after(epoch: int):
    def on_epoch(history: list) -> None:
        if len(history) == epoch:
            raise Killed

    return on_epoch


def test_resume_restores_every_state_exactly(tmp_path: Path, datasets: Splits) -> None:
    state = tmp_path / "mlp.pt"
    whole, whole_history = train_model("mlp", recipe(epochs=3), datasets)
    with pytest.raises(Killed):
        train_model("mlp", recipe(epochs=3), datasets, kill_after(1), state)
    assert load_state(state, torch.load(state, weights_only=True)["key"])["epoch"] == 1
    resumed, history = train_model("mlp", recipe(epochs=3), datasets, None, state)
    assert history == whole_history
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_a_state_of_other_params_other_code_or_a_truncated_one_is_ignored_with_a_warning(
    tmp_path: Path,
    datasets: Splits,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "mlp.pt"
    with pytest.raises(Killed):
        train_model("mlp", recipe(epochs=2), datasets, kill_after(1), state)
    saved = state.read_bytes()
    caplog.set_level(logging.INFO)
    _, history = train_model("mlp", recipe(epochs=2, lr=0.05), datasets, None, state)
    assert "resume state of another run" in caplog.text and "resumed" not in caplog.text
    assert [r.epoch for r in history] == [1, 2]

    caplog.clear()  # another validation split: the same digests, other digits trained on
    kept, held_out = datasets.train.hold_out(200)
    with pytest.raises(Killed):
        splits = Splits(kept, datasets.test, held_out)
        train_model("mlp", recipe(epochs=2), splits, kill_after(1), state)
    kept, held_out = datasets.train.hold_out(300)
    splits = Splits(kept, datasets.test, held_out)
    _, history = train_model("mlp", recipe(epochs=2), splits, None, state)
    assert "resume state of another run" in caplog.text and "resumed" not in caplog.text

    caplog.clear()
    state.write_bytes(saved[: len(saved) // 2])  # a write cut short
    _, history = train_model("mlp", recipe(epochs=2), datasets, None, state)
    assert "unreadable resume state ignored" in caplog.text and "resumed" not in caplog.text
    assert [r.epoch for r in history] == [1, 2]

    caplog.clear()
    state.unlink()  # the finished run's state, which train_model leaves to its caller
    with pytest.raises(Killed):
        train_model("mlp", recipe(epochs=2), datasets, kill_after(1), state)
    monkeypatch.setattr(resume, "code_digest", lambda: "0" * 64)  # the code changed since
    _, history = train_model("mlp", recipe(epochs=2), datasets, None, state)
    assert "resume state of another run" in caplog.text and "resumed" not in caplog.text
    assert [r.epoch for r in history] == [1, 2]
