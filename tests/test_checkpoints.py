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

from helpers import REPO_ROOT, fast_params, run
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import ModelParams, parse_params
from mnist_pipeline.model.checkpoint import load_checkpoint, save_checkpoint
from mnist_pipeline.model.nets import build_model
from mnist_pipeline.model.train import run_training


def train_params(name: str) -> ModelParams:
    return parse_params(fast_params()).models[name]


@pytest.fixture
def mlp_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "mlp.pt"
    torch.manual_seed(0)
    params = train_params("mlp")
    save_checkpoint(path, "mlp", build_model("mlp", params.net), params, {"torch": "x"})
    return path


def rewritten(path: Path, **changes: object) -> Path:
    """The checkpoint at ``path`` with fields of its payload replaced (None: removed)."""
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    torch.save(payload, path)
    return path


def test_checkpoint_round_trip(mlp_checkpoint: Path) -> None:
    loaded = load_checkpoint(mlp_checkpoint, expected_model="mlp")
    payload = torch.load(mlp_checkpoint, weights_only=True)
    assert loaded.name == "mlp" and not loaded.model.training
    assert loaded.net == train_params("mlp").net  # what rebuilt the network
    assert payload["recipe"] == train_params("mlp").recipe() and "net" not in payload["recipe"]
    assert loaded.provenance == {"torch": "x"} and loaded.validation == 0
    for key, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, payload["state_dict"][key])


def test_checkpoint_of_another_model(mlp_checkpoint: Path) -> None:
    with pytest.raises(PipelineError, match=r"mlp.pt: holds model 'mlp', expected 'lenet5'"):
        load_checkpoint(mlp_checkpoint, expected_model="lenet5")


def test_weights_of_another_network_name_every_mismatch(mlp_checkpoint: Path) -> None:
    """A checkpoint that says lenet5 but holds the MLP's weights (an architecture change)."""
    rewritten(mlp_checkpoint, model="lenet5")
    with pytest.raises(PipelineError) as caught:
        load_checkpoint(mlp_checkpoint, expected_model="lenet5")
    message = str(caught.value)
    assert f"{mlp_checkpoint}: weights do not fit network 'lenet5'" in message
    assert "Missing key(s)" in message and "features.0.weight" in message
    assert "Unexpected key(s)" in message and "layers.1.weight" in message
    assert "\n" not in message


def test_checkpoint_of_a_model_with_no_network(mlp_checkpoint: Path) -> None:
    rewritten(mlp_checkpoint, model="resnet")
    with pytest.raises(PipelineError, match="model 'resnet' has no network behind it"):
        load_checkpoint(mlp_checkpoint)


CRAFTED = {
    # field: (value, what the message says)
    "validation": ("x", "field 'validation' should be a valid integer, got 'x'"),
    "provenance": ([1, 2], "field 'provenance' should be a valid dictionary, got a list of 2"),
    "net": ({"deskew": "false"}, "field 'net.deskew' should be a valid boolean, got 'false'"),
    "num_parameters": (-1, "field 'num_parameters' should be greater than or equal to 0"),
    "model": (None, "field 'model' Field required"),
    "extra": ("?", "field 'extra' Extra inputs are not permitted"),
}


@pytest.mark.parametrize("field", CRAFTED)
def test_metadata_is_checked_against_its_schema(field: str, mlp_checkpoint: Path) -> None:
    value, message = CRAFTED[field]
    rewritten(mlp_checkpoint, **{field: value})
    with pytest.raises(PipelineError) as caught:
        load_checkpoint(mlp_checkpoint)
    assert message in str(caught.value)


def test_weights_must_be_finite(mlp_checkpoint: Path) -> None:
    payload = torch.load(mlp_checkpoint, weights_only=True)
    payload["state_dict"]["layers.1.bias"][3] = float("nan")
    torch.save(payload, mlp_checkpoint)
    with pytest.raises(PipelineError, match="weight 'layers.1.bias' holds NaN or infinite"):
        load_checkpoint(mlp_checkpoint)


def test_a_parameter_count_that_disagrees_is_refused(mlp_checkpoint: Path) -> None:
    rewritten(mlp_checkpoint, num_parameters=5)
    with pytest.raises(PipelineError, match="says 5 parameters, its network has 64630"):
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
    assert any(
        reason in message
        for reason in (
            "not a readable checkpoint",
            "not a checkpoint of this pipeline",
            "'state_dict'",
        )
    ), message
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
        rf"{name}: loss became (nan|inf|-inf) at epoch 1, step \d+; try a lower learning rate",
        message,
    ), message
    assert sorted(tmp_path.iterdir()) == []
