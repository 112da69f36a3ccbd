"""LeNet-5 (LeCun et al. 1998), with ReLU and max-pooling."""

from __future__ import annotations

import torch
from torch import nn

from mnist_pipeline.core.mnist import NUM_CLASSES
from mnist_pipeline.core.params import NetParams
from mnist_pipeline.model.nets import register


@register
class LeNet5(nn.Module):
    """Three convolutions, two fully connected layers: 61,706 parameters."""

    def __init__(self, net: NetParams) -> None:
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
            nn.Dropout(net.dropout),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Dropout(net.dropout),
            nn.Linear(84, NUM_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
