"""The reference preset: its params file and the one-line DVC command give one recipe."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from dvc.utils.hydra import apply_overrides

from helpers import REPO_ROOT
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import load_params

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from seeds import load_recipe  # noqa: E402


def preset_overrides() -> list[str]:
    """The ``-S`` values of the ``dvc exp run -n reference`` command the preset file gives."""
    text = (REPO_ROOT / "params" / "reference.yaml").read_text()
    return re.findall(r"-S '([^']+)'", text[text.index("dvc exp run -n reference") :])


def test_the_command_and_the_preset_file_give_the_same_recipe(tmp_path: Path) -> None:
    overrides = preset_overrides()
    assert len(overrides) == 2
    params_file = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params_file)
    apply_overrides(params_file, overrides)  # what `dvc exp run -S` does to params.yaml
    by_command = load_params(params_file).models
    by_preset = load_recipe(REPO_ROOT / "params.yaml", "reference").models
    assert by_command == by_preset
    for recipe in by_preset.values():  # the reference recipe, nothing of the defaults
        assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.schedule) == (
            15,
            64,
            pytest.approx(0.01),
            "constant",
        )
        assert not recipe.augment.enabled and not recipe.net.deskew and not recipe.augment.fade


def test_set_overrides_apply_as_dvc_exp_run_does() -> None:
    sets = ["models.mlp.net.deskew=false", "data.validation=100", "models.lenet5.epochs=2"]
    params = load_recipe(REPO_ROOT / "params.yaml", None, sets)
    assert params.models["mlp"].net.deskew is False and params.models["lenet5"].epochs == 2
    assert params.data.validation == 100
    with pytest.raises(PipelineError, match="--set models.mlp.net.deskw=false: "):
        load_recipe(REPO_ROOT / "params.yaml", None, ["models.mlp.net.deskw=false"])


def test_every_command_in_the_recipe_log_runs_a_valid_recipe() -> None:
    """docs/recipe.md: each `scripts/seeds.py` command parses and gives a valid recipe."""
    import shlex

    from seeds import parse_args

    text = (REPO_ROOT / "docs" / "recipe.md").read_text()
    commands = re.findall(r"`python scripts/seeds.py ([^`]+)`", text)
    assert len(commands) >= 20
    for command in commands:
        args = parse_args(shlex.split(command))
        sets = [*args.set, f"data.validation={args.validation}"]
        params = load_recipe(REPO_ROOT / "params.yaml", args.preset, sets)
        assert params.data.validation == 10_000, command
        assert set(args.models) <= set(params.models), command


def test_gpu_preset_only_lengthens_the_schedules() -> None:
    defaults = load_params(REPO_ROOT / "params.yaml").models
    gpu = load_recipe(REPO_ROOT / "params.yaml", "gpu").models
    for name, recipe in gpu.items():
        assert recipe.epochs > defaults[name].epochs
        assert recipe.model_copy(update={"epochs": defaults[name].epochs}) == defaults[name]
