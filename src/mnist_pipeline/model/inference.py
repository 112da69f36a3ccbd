"""Run a network over digits: the one way every part of the pipeline evaluates a model.

:func:`open_checkpoint` loads a checkpoint with the evaluation settings (deterministic
kernels, the device, channels-last), and :func:`evaluate_checkpoint` runs it over uint8
digits, deskewed when its network was trained so, returning logits and, given labels,
loss and accuracy. The epochs' test pass, the evaluate stage, the export stage's check and
``predict`` all go through these two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnist_pipeline.core.mnist import NUM_CLASSES
from mnist_pipeline.model.checkpoint import Checkpoint, load_checkpoint
from mnist_pipeline.model.runtime import make_deterministic, pick_device
from mnist_pipeline.model.transforms import BatchTransform

BATCH_SIZE = 1000  # digits per forward pass where params.yaml does not say


@dataclass(frozen=True)
class SplitResult:
    logits: torch.Tensor  # N x 10, on the CPU
    loss: float  # mean cross-entropy (NaN without labels)
    accuracy: float  # fraction correct (NaN without labels)

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


def channels_last(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-d weights in channels-last layout (in place) and return it.

    On the CPU, oneDNN runs convolutions and pooling faster in this layout, in training and
    in inference. Results stay deterministic, though not bitwise those of the default
    layout. Models without 4-d weights are unchanged.
    """
    return model.to(memory_format=torch.channels_last)


def model_inputs(
    images: torch.Tensor, batch_size: int, device: torch.device, deskew: bool = False
) -> list[torch.Tensor]:
    """uint8 ``images`` as the normalized (and, with ``deskew``, deskewed) batches a network
    reads; computed once where the same digits are evaluated again (every epoch)."""
    normalize = BatchTransform(deskew=deskew)
    return [
        normalize(images[start : start + batch_size].to(device))
        for start in range(0, len(images), batch_size)
    ]


def ready(checkpoint: Checkpoint, device: torch.device | None = None) -> Checkpoint:
    """The evaluation settings: deterministic kernels, and the network on ``device``
    (default: :func:`.pick_device`) in channels-last layout, converted in place."""
    make_deterministic()
    channels_last(checkpoint.model.to(device or pick_device()))
    return checkpoint


def open_checkpoint(
    path: Path, expected_model: str | None = None, device: torch.device | None = None
) -> Checkpoint:
    """:func:`.load_checkpoint`, :func:`ready` for evaluation."""
    return ready(load_checkpoint(path, expected_model), device)


@torch.inference_mode()
def evaluate_checkpoint(
    checkpoint: Checkpoint,
    digits: torch.Tensor | list[torch.Tensor],
    labels: torch.Tensor | None = None,
    batch_size: int = BATCH_SIZE,
) -> SplitResult:
    """Run ``checkpoint``'s network over ``digits``; restores its train mode after.

    ``digits``: uint8 N x 1 x 28 x 28 images, or the batches :func:`model_inputs` made of
    them with the checkpoint's ``deskew``. With ``labels``, the loss and accuracy too.
    """
    model = checkpoint.model
    if isinstance(digits, torch.Tensor):
        device = next(model.parameters()).device
        digits = model_inputs(digits, batch_size, device, checkpoint.net.deskew)
    was_training = model.training
    model.eval()
    parts = [model(batch).float().cpu() for batch in digits]
    model.train(was_training)
    logits = torch.cat(parts) if parts else torch.empty(0, NUM_CLASSES)
    if labels is None:
        return SplitResult(logits, float("nan"), float("nan"))
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
    return SplitResult(logits, loss, accuracy)
