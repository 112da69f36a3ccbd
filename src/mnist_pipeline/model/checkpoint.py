"""Save and load checkpoints: a network's weights, the settings that rebuild it, and how it
was trained.

A checkpoint is read with ``torch.load(weights_only=True)`` (tensors and plain data only,
never code), then checked as data before any of it is used: its metadata against a typed
schema, its weights for finite values, and the weights against the network its settings
build, every mismatch named.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from mnist_pipeline.core.atomic import write_bytes
from mnist_pipeline.core.errors import PipelineError, excerpt, first_line
from mnist_pipeline.core.params import ModelParams, NetParams
from mnist_pipeline.model.nets import build_model, count_parameters

FORMAT_VERSION = 2
MAX_BYTES = 256 << 20  # far above any network the params allow to train here


@dataclass(frozen=True)
class Checkpoint:
    """A network with its settings and history: loaded from a file, or still in training."""

    name: str  # the model's name in params.yaml and model/nets/
    model: nn.Module
    net: NetParams  # what rebuilds the network, and how it reads digits (deskew)
    provenance: dict[str, Any]  # what trained it: runtime.provenance()
    validation: int = 0  # the last training digits held out of its training (0: none)


class _Metadata(BaseModel):
    """Everything in a checkpoint file but its weights, as it must be."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format_version: Literal[2]
    model: str
    net: NetParams
    num_parameters: int = Field(ge=0)
    recipe: dict[str, Any]
    provenance: dict[str, Any]
    validation: int = Field(ge=0)


def save_checkpoint(
    path: Path,
    name: str,
    model: nn.Module,
    params: ModelParams,
    provenance: dict[str, Any],
    validation: int = 0,
) -> None:
    """Write ``model``'s weights, its network settings and what produced it, atomically and
    byte-stably."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model": name,
        "net": params.net.model_dump(),
        "num_parameters": count_parameters(model),
        "recipe": params.recipe(),
        "provenance": provenance,
        "validation": validation,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()  # saving to a buffer keeps the temp file's name out of the archive
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def read_payload(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` of a regular file of bounded size."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: checkpoint missing (train the model first)") from exc
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read checkpoint: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise PipelineError(f"{path}: not a regular file, so not a checkpoint")
    if info.st_size > MAX_BYTES:
        raise PipelineError(f"{path}: {info.st_size} bytes, more than any checkpoint here")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # garbage makes torch.load raise anything: KeyError, EOFError...
        raise PipelineError(f"{path}: not a readable checkpoint: {first_line(exc)}") from exc


def _metadata(path: Path, payload: Any) -> _Metadata:
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        found = payload.get("format_version") if isinstance(payload, dict) else None
        raise PipelineError(
            f"{path}: not a checkpoint of this pipeline (format {excerpt(found)}, "
            f"expected {FORMAT_VERSION}); train the model again"
        )
    try:
        return _Metadata.model_validate({k: v for k, v in payload.items() if k != "state_dict"})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise PipelineError(
            f"{path}: checkpoint field '{where}' {error['msg'].removeprefix('Input ')}, "
            f"got {excerpt(error.get('input'))}"
        ) from None


def _weights(path: Path, payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    weights = payload.get("state_dict")
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise PipelineError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise PipelineError(f"{path}: weight {excerpt(key)} holds NaN or infinite values")
    return weights


def load_checkpoint(path: Path, expected_model: str | None = None) -> Checkpoint:
    """Load ``path``, check it, and rebuild its network in eval mode."""
    payload = read_payload(path)
    meta = _metadata(path, payload)
    if expected_model is not None and meta.model != expected_model:
        raise PipelineError(
            f"{path}: holds model {excerpt(meta.model)}, expected '{expected_model}'"
        )
    weights = _weights(path, payload)
    try:
        model = build_model(meta.model, meta.net)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from None
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # every mismatch, on one line
        raise PipelineError(
            f"{path}: weights do not fit network '{meta.model}' with {meta.net}: {detail}"
        ) from exc
    if meta.num_parameters != count_parameters(model):
        raise PipelineError(
            f"{path}: says {meta.num_parameters} parameters, its network has "
            f"{count_parameters(model)}"
        )
    return Checkpoint(meta.model, model.eval(), meta.net, meta.provenance, meta.validation)
