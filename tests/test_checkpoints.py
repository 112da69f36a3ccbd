"""Bad checkpoints get a clear error; a loss that turns NaN or infinite stops training."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO_ROOT, fast_params, run
from mnist_pipeline.checkpoint import load_checkpoint, save_checkpoint
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.models import build_model
from mnist_pipeline.params import TrainParams, parse_params
from mnist_pipeline.train import run_training


def train_params(name: str) -> TrainParams:
    return parse_params(fast_params()).models[name]


@pytest.fixture
def mlp_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "mlp.pt"
    torch.manual_seed(0)
    save_checkpoint(path, "mlp", build_model("mlp"), train_params("mlp"))
    return path


def test_checkpoint_round_trip(mlp_checkpoint: Path) -> None:
    name, model, deskew, *_ = load_checkpoint(mlp_checkpoint, expected_model="mlp")
    payload = torch.load(mlp_checkpoint, weights_only=True)
    assert name == "mlp" and not model.training
    assert deskew is train_params("mlp").deskew
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, payload["state_dict"][key])


def test_checkpoint_of_another_model(mlp_checkpoint: Path) -> None:
    with pytest.raises(PipelineError, match=r"mlp.pt: holds model 'mlp', expected 'lenet5'"):
        load_checkpoint(mlp_checkpoint, expected_model="lenet5")


def test_weights_of_another_architecture(mlp_checkpoint: Path) -> None:
    """A checkpoint that says lenet5 but holds the MLP's weights (an architecture change)."""
    payload = torch.load(mlp_checkpoint, weights_only=True)
    payload["model"] = "lenet5"
    torch.save(payload, mlp_checkpoint)
    with pytest.raises(PipelineError) as caught:
        load_checkpoint(mlp_checkpoint, expected_model="lenet5")
    assert f"{mlp_checkpoint}: weights do not fit architecture 'lenet5'" in str(caught.value)


def test_checkpoint_of_a_model_with_no_class(mlp_checkpoint: Path) -> None:
    payload = torch.load(mlp_checkpoint, weights_only=True)
    payload["model"] = "resnet"
    torch.save(payload, mlp_checkpoint)
    with pytest.raises(PipelineError, match="model 'resnet' has no class behind it"):
        load_checkpoint(mlp_checkpoint)


class Exploit:
    """A pickle that would run a command when loaded without ``weights_only``."""

    def __reduce__(self) -> tuple[Callable[..., int], tuple[str]]:
        return os.system, ("echo should-not-run",)


def pickled(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "zeroed-middle": lambda data: data[:500] + bytes(2000) + data[2500:],
    "garbage": lambda data: b"hello world" * 100,
    "empty": lambda data: b"",
    "code-in-pickle": lambda data: pickled({"state_dict": Exploit()}),
    "plain-tensor": lambda data: pickled(torch.zeros(3)),
}


@pytest.mark.parametrize("case", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_corrupt_checkpoint(case: str, mlp_checkpoint: Path) -> None:
    mlp_checkpoint.write_bytes(CORRUPTIONS[case](mlp_checkpoint.read_bytes()))
    with pytest.raises(PipelineError) as caught:
        load_checkpoint(mlp_checkpoint, expected_model="mlp")
    message = str(caught.value)
    assert message.startswith(f"{mlp_checkpoint}: ")
    assert "not a readable checkpoint" in message or "not a checkpoint of this pipeline" in message
    assert "\n" not in message


def test_evaluate_stage_on_a_corrupt_checkpoint(tmp_path: Path, small_images: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images").symlink_to(small_images)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "lenet5.pt").write_bytes(b"PK\x03\x04" + bytes(300))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(fast_params()))
    script = str(REPO_ROOT / "stages" / "evaluate.py")
    result = run([sys.executable, script, "lenet5"], tmp_path, check=False)
    assert result.returncode == 1
    assert "models/lenet5.pt: not a readable checkpoint" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "metrics").exists()
    assert not (tmp_path / "plots").exists()


def test_diverging_loss_stops_training_naming_epoch_and_step(
    tmp_path: Path, small_images: Path
) -> None:
    name = "mlp"
    params = train_params(name).model_copy(update={"lr": 1e10, "schedule": "constant"})
    checkpoint, history = tmp_path / "model.pt", tmp_path / "history.csv"
    with pytest.raises(PipelineError) as caught:
        run_training(name, params, small_images, checkpoint, history)
    message = str(caught.value)
    assert re.fullmatch(
        rf"{name}: loss became (nan|inf|-inf) at epoch 1, step \d+; try a lower models.{name}.lr",
        message,
    ), message
    assert sorted(tmp_path.iterdir()) == []
