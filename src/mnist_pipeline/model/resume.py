"""Resume state for the train stage: what a killed run needs to go on from its last epoch.

DVC deletes a stage's outputs before it runs the stage, so the state lives outside them,
in DVC's tmp dir (``.dvc/tmp/resume/<model>.pt``, ignored by git). It is written
atomically after every epoch and removed when the stage finishes. Each state carries a
key: the sha256 of everything that decides the run's bytes (params, the data's digests,
the package's code, torch, device, CPU kernels, threads). A state whose key differs, or
that does not load, is ignored with a warning and the run starts from epoch 1.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_pipeline.core.atomic import write_bytes
from mnist_pipeline.model.history import EpochRecord

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/mnist_pipeline


def default_dir() -> Path:
    """Where the stage keeps resume states: DVC's tmp dir in a DVC repo, else ``.cache/``."""
    return Path(".dvc/tmp/resume") if Path(".dvc").is_dir() else Path(".cache/resume")


def code_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over every module of the package, subpackages included, by path: any code
    change gives a new key."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        name = path.relative_to(package_dir).as_posix()
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def state_key(determinants: dict[str, Any]) -> str:
    """sha256 of ``determinants`` (JSON-able) and the package's code."""
    text = json.dumps({**determinants, "code": code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def rng_states(generator: torch.Generator) -> dict[str, Any]:
    """Every random generator a run draws from, as tensors and plain values."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "generator": generator.get_state(),  # the loader's shuffling and the augmentation
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(generator: torch.Generator, states: dict[str, Any]) -> None:
    """Put every generator back where :func:`rng_states` found it."""
    generator.set_state(states["generator"])
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def snapshot(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    history: list[EpochRecord],
) -> dict[str, Any]:
    """Everything a run needs to go on after its last epoch: see :func:`restore`."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # momentum buffers, learning rates
        "schedule": schedule.state_dict(),
        "rng": rng_states(generator),  # shuffling, augmentation, and the global generators
        "history": [asdict(record) for record in history],
    }


def restore(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> list[EpochRecord]:
    """Put a :func:`snapshot` back in place; return its history."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    set_rng_states(generator, state["rng"])
    return [EpochRecord(**row) for row in state["history"]]


def save_state(path: Path, key: str, epoch: int, state: dict[str, Any]) -> None:
    """Write the state after ``epoch`` atomically: a kill mid-write leaves the previous one."""
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "key": key, "epoch": epoch, **state}, buffer)
    write_bytes(path, buffer.getvalue())


def load_state(path: Path, key: str) -> dict[str, Any] | None:
    """The state at ``path`` if it loads and was saved under ``key``; else None, with a warning.

    Loaded with ``weights_only=True``: a state file is data, never code.
    """
    if not path.exists():
        return None
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file makes torch.load raise anything
        log.warning("%s: unreadable resume state ignored, starting from epoch 1 (%s)", path, exc)
        return None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        log.warning("%s: not a resume state of this pipeline, ignored", path)
        return None
    if state.get("key") != key:
        log.warning(
            "%s: resume state of another run (other params, data, code, threads or device), "
            "ignored: starting from epoch 1",
            path,
        )
        return None
    return state


def remove_state(path: Path) -> None:
    """Remove the state once the run has written its outputs."""
    path.unlink(missing_ok=True)
