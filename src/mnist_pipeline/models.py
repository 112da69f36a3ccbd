"""The two classifiers and the registry that names them.

Adding a model is one class decorated with ``@register("name")`` and one entry under
``models:`` in ``params.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mnist_pipeline.mnist import NUM_CLASSES, SIDE

MODELS: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make a model buildable by ``name`` from params and checkpoints."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS[name] = cls
        return cls

    return add


def build_model(name: str, dropout: float = 0.0) -> nn.Module:
    """Instantiate the registered model ``name``."""
    return MODELS[name](dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@register("lenet5")
class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling: 61,706 parameters."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),  # 28x28 -> 28x28
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 14x14
            nn.Conv2d(6, 16, 5),  # -> 10x10
            nn.ReLU(),
            nn.MaxPool2d(2),  # -> 5x5
            nn.Conv2d(16, 120, 5),  # -> 1x1
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(84, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("mlp")
class MLP(nn.Module):
    """A 784-80-20-10 multilayer perceptron: 64,630 parameters."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(SIDE * SIDE, 80),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(80, 20),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(20, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
