"""Bad params: caught before any work, with an error that names the key path at fault."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO_ROOT, fast_params, run
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.models import MODELS
from mnist_pipeline.params import load_params, parse_params

DELETE = object()

# (key path, new value or DELETE, what the error must say)
BAD_PARAMS: dict[str, tuple[str, Any, str]] = {
    "typo": (
        "models.lenet5.lrr",
        0.01,
        "unknown key 'models.lenet5.lrr' (did you mean 'lr'?)",
    ),
    "top-level-typo": (
        "evalute",
        {"batch_size": 10},
        "unknown key 'evalute' (did you mean 'evaluate'?)",
    ),
    "augment-typo": (
        "models.mlp.augment.rotation",
        5,
        "unknown key 'models.mlp.augment.rotation' (did you mean 'rotate'?)",
    ),
    "missing": ("models.lenet5.seed", DELETE, "missing key 'models.lenet5.seed'"),
    "string-for-int": ("models.mlp.epochs", "ten", "'models.mlp.epochs' should be a valid integer"),
    "float-for-int": (
        "models.mlp.batch_size",
        64.5,
        "'models.mlp.batch_size' should be a valid int",
    ),
    "bool-for-int": ("models.mlp.seed", True, "'models.mlp.seed' should be a valid integer"),
    "string-for-bool": ("data.verify", "yes", "'data.verify' should be a valid boolean, got 'yes'"),
    "int-for-bool": ("models.mlp.deskew", 1, "'models.mlp.deskew' should be a valid boolean"),
    "negative-validation": (
        "data.validation",
        -1,
        "'data.validation' should be greater than or equal to 0, got -1",
    ),
    "float-validation": ("data.validation", 0.2, "'data.validation' should be a valid integer"),
    "string-for-float": ("models.lenet5.lr", "fast", "'models.lenet5.lr' should be a valid number"),
    "nan-lr": ("models.lenet5.lr", float("nan"), "'models.lenet5.lr' should be a finite number"),
    "inf-lr": ("models.lenet5.lr", float("inf"), "'models.lenet5.lr' should be a finite number"),
    "not-a-mapping": ("models.lenet5.augment", 5, "'models.lenet5.augment' must be a mapping"),
    "zero-lr": ("models.lenet5.lr", 0, "'models.lenet5.lr' should be greater than 0, got 0"),
    "negative-lr": ("models.mlp.lr", -0.1, "'models.mlp.lr' should be greater than 0, got -0.1"),
    "zero-epochs": ("models.mlp.epochs", 0, "'models.mlp.epochs' should be greater than 0, got 0"),
    "zero-batch": ("models.lenet5.batch_size", 0, "'models.lenet5.batch_size' should be greater"),
    "momentum-1": ("models.lenet5.momentum", 1.0, "'models.lenet5.momentum' should be less than 1"),
    "optimizer": ("models.mlp.optimizer", "adam", "'models.mlp.optimizer' should be 'sgd' or 'ad"),
    "schedule": ("models.mlp.schedule", "step", "'models.mlp.schedule' should be 'onecycle', "),
    "floor": (
        "accuracy_floor.mlp",
        1.5,
        "'accuracy_floor.mlp' should be less than or equal to 1, got 1.5",
    ),
    "no-class": ("models.resnet", "copy:lenet5", "model 'resnet' has no class behind it"),
    "floor-no-class": ("accuracy_floor.vgg", 0.9, "model 'vgg' has no class behind it"),
    "no-models": ("models", {}, "'models' must name at least one model"),
}


def spoiled(key: str, value: Any) -> dict:
    params = copy.deepcopy(fast_params())
    *parents, last = key.split(".")
    node = params
    for name in parents:
        node = node[name]
    if value is DELETE:
        del node[last]
    elif isinstance(value, str) and value.startswith("copy:"):
        node[last] = copy.deepcopy(params["models"][value.removeprefix("copy:")])
    else:
        node[last] = value
    return params


def test_the_fast_params_themselves_are_valid() -> None:
    params = parse_params(fast_params())
    assert set(params.models) == {"lenet5", "mlp"}


@pytest.mark.parametrize("case", BAD_PARAMS, ids=list(BAD_PARAMS))
def test_bad_param_names_its_key(case: str) -> None:
    key, value, message = BAD_PARAMS[case]
    with pytest.raises(PipelineError) as caught:
        parse_params(spoiled(key, value), known_models=MODELS)
    assert message in str(caught.value)


def test_data_stages_check_params_without_the_model_registry() -> None:
    """Model names are checked where the model code is loaded: the train stage, say."""
    assert "resnet" in parse_params(spoiled("models.resnet", "copy:lenet5")).models


def test_params_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    with pytest.raises(PipelineError, match=f"{path}: cannot read params"):
        load_params(path)
    path.write_text("models: [unclosed\n")
    with pytest.raises(PipelineError, match=f"{path}: not valid YAML"):
        load_params(path)
    path.write_text(yaml.safe_dump(spoiled("models.mlp.lr", -1)))
    with pytest.raises(
        PipelineError, match=f"{path}: params: 'models.mlp.lr' should be greater than 0"
    ):
        load_params(path)


def stage(workdir: Path, params: dict, *args: str) -> tuple[int, str]:
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    script = str(REPO_ROOT / "stages" / f"{args[0]}.py")
    result = run([sys.executable, script, *args[1:]], workdir, check=False)
    return result.returncode, result.stderr


def test_fetch_stage_stops_on_a_typo_before_any_work(tmp_path: Path) -> None:
    code, stderr = stage(tmp_path, spoiled("data.verfy", True), "fetch")
    assert code == 1
    assert "params.yaml: params: unknown key 'data.verfy' (did you mean 'verify'?)" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("key", "value", "model", "message"),
    [
        (
            "models.lenet5.batch_size",
            1001,
            "lenet5",
            "'models.lenet5.batch_size' is 1001, larger than the 1000 training images",
        ),
        ("data.validation", 1000, "mlp", "'data.validation' is 1000, but the split has 1000"),
    ],
)
def test_train_stage_rejects_params_too_large_for_the_data(
    tmp_path: Path, small_images: Path, key: str, value: int, model: str, message: str
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images").symlink_to(small_images)
    code, stderr = stage(tmp_path, spoiled(key, value), "train", model)
    assert code == 1
    assert message in stderr
    assert "epoch" not in stderr and "Traceback" not in stderr  # stopped before training
    assert not (tmp_path / "models").exists()
    assert not (tmp_path / "plots").exists()


def test_train_stage_rejects_a_model_without_a_class(tmp_path: Path) -> None:
    code, stderr = stage(tmp_path, spoiled("models.resnet", "copy:lenet5"), "train", "resnet")
    assert code == 1
    assert "model 'resnet' has no class behind it; known models: lenet5, mlp" in stderr


@pytest.mark.parametrize("script", ["train", "evaluate"])
def test_model_stages_name_the_models_params_yaml_has(tmp_path: Path, script: str) -> None:
    code, stderr = stage(tmp_path, fast_params(), script, "lenet")
    assert code == 1
    assert f"usage: {script}.py MODEL, one of: lenet5, mlp" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "models").exists()
