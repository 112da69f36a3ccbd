"""Bad params: caught before any work, with an error that names the key path at fault."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import REPO_ROOT, assert_known_models_listed, fast_params, models, run
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import load_params, parse_params

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
    "int-for-bool": (
        "models.mlp.net.deskew",
        1,
        "'models.mlp.net.deskew' should be a valid boolean",
    ),
    "net-typo": (
        "models.mlp.net.drop",
        0.1,
        "unknown key 'models.mlp.net.drop' (did you mean 'dropout'?)",
    ),
    "recipe-key-in-net": ("models.mlp.net.lr", 0.1, "unknown key 'models.mlp.net.lr'"),
    "huge-seed": (
        "models.mlp.seed",
        10**20,
        "'models.mlp.seed' should be less than or equal to 4294967295, got 100000000000000000000",
    ),
    "shear-90": ("models.lenet5.augment.shear", 90, "'models.lenet5.augment.shear' should be less"),
    "long-value": ("models.mlp.optimizer", "x" * 10_000, "got 'xxxxxxxxxxx"),
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
    "no-class": ("models.resnet", "copy:lenet5", "model 'resnet' has no network behind it"),
    "floor-no-class": ("accuracy_floor.vgg", 0.9, "model 'vgg' has no network behind it"),
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
    assert list(params.models) == models()


@pytest.mark.parametrize("case", BAD_PARAMS, ids=list(BAD_PARAMS))
def test_bad_param_names_its_key(case: str) -> None:
    key, value, message = BAD_PARAMS[case]
    with pytest.raises(PipelineError) as caught:
        parse_params(spoiled(key, value))
    text = str(caught.value)
    assert message in text
    assert len(text) < 300 and "\n" not in text  # a value is quoted short, on one line


GOOD = yaml.safe_dump(fast_params())
CRAFTED_FILES: dict[str, tuple[bytes, str]] = {
    "unclosed": (b"models: [unclosed\n", "not valid YAML: line 2:"),
    "duplicate-key": (
        GOOD.replace("data:", "evaluate: {}\ndata:", 1).encode(),
        "not valid YAML: line ",
    ),
    "alias-bomb": (
        b"a: &a [x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )  # fmt: skip
        + b"data: {validation: *i}\n",
        "aliases (*name) are not allowed here",
    ),
    "deep": (b"a: " + b"[" * 20_000 + b"]" * 20_000 + b"\n", "nested more than 16 levels"),
    "not-utf8": (b"data:\n  source: \xff\xfe\n", "not UTF-8 text (byte 16)"),
    "empty": (b"", "params: 'params' must be a mapping, got None"),
}


@pytest.mark.parametrize("case", CRAFTED_FILES)
def test_a_crafted_params_file_is_refused_naming_the_file(tmp_path: Path, case: str) -> None:
    data, message = CRAFTED_FILES[case]
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    with pytest.raises(PipelineError) as caught:
        load_params(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_key_given_twice_is_named(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("evaluate: {batch_size: 10}\nevaluate: {batch_size: 20}\n")
    with pytest.raises(PipelineError, match="line 2: key 'evaluate' is given twice"):
        load_params(path)


def test_params_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    with pytest.raises(PipelineError, match=f"{path}: cannot read params"):
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
            "lenet5: a batch of 1001 digits is larger than the 1000 training digits",
        ),
        ("data.validation", 1000, "mlp", "a validation split of 1000 digits needs a training"),
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


@pytest.mark.parametrize("script", ["fetch", "train"])
def test_every_stage_refuses_a_model_without_a_network(tmp_path: Path, script: str) -> None:
    """The first stage refuses it, before any download."""
    args = [script, "resnet"] if script == "train" else [script]
    code, stderr = stage(tmp_path, spoiled("models.resnet", "copy:lenet5"), *args)
    assert code == 1
    assert "model 'resnet' has no network behind it" in stderr
    assert_known_models_listed(stderr)
    assert "Traceback" not in stderr and not (tmp_path / "data").exists()


@pytest.mark.parametrize("script", ["train", "evaluate"])
def test_model_stages_name_the_models_params_yaml_has(tmp_path: Path, script: str) -> None:
    code, stderr = stage(tmp_path, fast_params(), script, "lenet")
    assert code == 1
    assert f"usage: {script}.py MODEL, one of: {', '.join(models())} (got 'lenet')" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "models").exists()
