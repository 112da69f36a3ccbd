"""Save and load model checkpoints: a state dict plus what is needed to rebuild the model."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from mnist_pipeline.atomic import write_bytes
from mnist_pipeline.errors import PipelineError, first_line
from mnist_pipeline.models import MODELS, build_model, count_parameters
from mnist_pipeline.params import TrainParams

FORMAT_VERSION = 1


class Checkpoint(NamedTuple):
    """A loaded checkpoint: the model's name, the model in eval mode, how it reads digits."""

    name: str
    model: nn.Module
    deskew: bool  # trained on deskewed digits: deskew what it is shown too
    provenance: dict[str, Any]  # what trained it: runtime.provenance()
    validation: int  # the last training digits held out of its training (0: none)


def save_checkpoint(
    path: Path,
    name: str,
    model: nn.Module,
    params: TrainParams,
    provenance: dict[str, Any] | None = None,
    validation: int = 0,
) -> None:
    """Write ``model``'s weights, how to rebuild it and what produced it, atomically and
    byte-stably."""
    payload = {
        "format_version": FORMAT_VERSION,
        "model": name,
        "dropout": params.dropout,
        "deskew": params.deskew,
        "num_parameters": count_parameters(model),
        "params": params.model_dump(),
        "provenance": provenance or {},
        "validation": validation,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()  # saving to a buffer keeps the temp file's name out of the archive
    torch.save(payload, buffer)
    write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, expected_model: str | None = None) -> Checkpoint:
    """Load ``path`` with ``weights_only=True`` and rebuild its model in eval mode."""
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: checkpoint missing (run the train stage)") from exc
    except Exception as exc:  # garbage makes torch.load raise anything: KeyError, EOFError...
        raise PipelineError(f"{path}: not a readable checkpoint: {first_line(exc)}") from exc
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise PipelineError(f"{path}: not a checkpoint of this pipeline (format {FORMAT_VERSION})")
    name = payload.get("model")
    if name not in MODELS:
        raise PipelineError(f"{path}: model '{name}' has no class behind it")
    if expected_model is not None and name != expected_model:
        raise PipelineError(f"{path}: holds model '{name}', expected '{expected_model}'")
    try:
        model = build_model(name, dropout=float(payload.get("dropout", 0.0)))
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise PipelineError(
            f"{path}: weights do not fit architecture '{name}': {first_line(exc)}"
        ) from exc
    return Checkpoint(
        name,
        model.eval(),
        bool(payload.get("deskew", False)),
        dict(payload.get("provenance") or {}),
        int(payload.get("validation", 0)),
    )
