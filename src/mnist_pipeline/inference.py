"""Run a model over a whole split: logits, loss and accuracy, batched and in eval mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mnist_pipeline.transforms import BatchTransform


@dataclass(frozen=True)
class SplitResult:
    logits: torch.Tensor  # N x 10, on the CPU
    loss: float  # mean cross-entropy
    accuracy: float  # fraction correct

    @property
    def predictions(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)


def channels_last(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-d weights in channels-last layout (in place) and return it.

    On the CPU, oneDNN runs LeNet-5's convolutions and pooling faster in this layout, in
    training and in inference. Results stay deterministic, though not bitwise those of
    the default layout. Models without 4-d weights are unchanged.
    """
    return model.to(memory_format=torch.channels_last)


def model_inputs(
    images: torch.Tensor, batch_size: int, device: torch.device, deskew: bool = False
) -> list[torch.Tensor]:
    """uint8 ``images`` as the normalized (and, with ``deskew``, deskewed) batches a model reads."""
    normalize = BatchTransform(deskew=deskew)
    return [
        normalize(images[start : start + batch_size].to(device))
        for start in range(0, len(images), batch_size)
    ]


@torch.inference_mode()
def run_inputs(model: nn.Module, inputs: list[torch.Tensor], labels: torch.Tensor) -> SplitResult:
    """Evaluate ``model`` on batches from :func:`model_inputs`; restores train mode after."""
    was_training = model.training
    model.eval()
    logits = torch.cat([model(batch).float().cpu() for batch in inputs])
    model.train(was_training)
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).double().mean().item()
    return SplitResult(logits, loss, accuracy)


def run_split(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    device: torch.device,
    deskew: bool = False,
) -> SplitResult:
    """Evaluate ``model`` on uint8 ``images`` with their ``labels``; restores train mode after.

    ``deskew``: whether the model was trained on deskewed digits (its checkpoint says).
    """
    return run_inputs(model, model_inputs(images, batch_size, device, deskew), labels)
