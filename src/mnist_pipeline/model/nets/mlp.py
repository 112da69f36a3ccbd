"""A small multilayer perceptron on the raw pixels."""

from __future__ import annotations

import torch
from torch import nn

from mnist_pipeline.core.mnist import NUM_CLASSES, SIDE
from mnist_pipeline.core.params import NetParams
from mnist_pipeline.model.nets import register


@register
class MLP(nn.Module):
    """784-80-20-10 with ReLU: 64,630 parameters."""

    def __init__(self, net: NetParams) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(SIDE * SIDE, 80),
            nn.ReLU(),
            nn.Dropout(net.dropout),
            nn.Linear(80, 20),
            nn.ReLU(),
            nn.Dropout(net.dropout),
            nn.Linear(20, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
