"""The image-folder Dataset, its DataLoader, and batched normalization and augmentation.

The Dataset decodes every PNG once into one uint8 tensor and serves whole batches by
indexing it (``__getitems__``), so a training epoch costs no per-sample Python. Pixels
stay uint8 until :class:`BatchTransform` turns a batch into normalized floats, with random
affine augmentation applied to the whole batch at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from mnist_pipeline.archive import NUM_CLASSES
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import AugmentParams
from mnist_pipeline.png import SIDE, decode_digit

MEAN, STD = 0.1307, 0.3081

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 images B x 1 x 28 x 28, int64 labels B


def scan_split(split_dir: Path) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for every ``<label>/<index>.png`` under ``split_dir``, by index."""
    if not split_dir.is_dir():
        raise PipelineError(f"{split_dir}: image folder missing (run the extract stage)")
    files = [
        (path, label)
        for label in range(NUM_CLASSES)
        for path in (split_dir / str(label)).glob("*.png")
    ]
    if not files:
        raise PipelineError(f"{split_dir}: holds no <label>/<index>.png images")
    return sorted(files, key=lambda item: (int(item[0].stem), item[1]))


class DigitFolder(Dataset[tuple[torch.Tensor, int]]):
    """MNIST digits from ``<split>/<label>/<index>.png``, decoded once and held in memory."""

    def __init__(self, split_dir: Path) -> None:
        files = scan_split(split_dir)
        pixels = [decode_digit(path.read_bytes(), str(path)) for path, _ in files]
        self.images = torch.from_numpy(np.stack(pixels)).unsqueeze(1)  # N x 1 x 28 x 28 uint8
        self.labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        self.paths = [path for path, _ in files]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices: list[int]) -> Batch:
        """One whole batch in a single indexing operation (DataLoader's batched fetch)."""
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


def _keep_batch(batch: Batch) -> Batch:
    """collate_fn for a dataset that already returns whole batches."""
    return batch


def make_loader(
    dataset: DigitFolder,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
) -> DataLoader[Batch]:
    """A DataLoader over ``dataset`` that shuffles with ``generator`` and batches in one go.

    The data is in memory, so ``num_workers=0``: no worker processes to seed or to start.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=_keep_batch,
        num_workers=0,
        pin_memory=pin_memory,
    )


class BatchTransform:
    """uint8 batch -> normalized float batch, with optional random affine augmentation."""

    def __init__(
        self, augment: AugmentParams | None = None, generator: torch.Generator | None = None
    ):
        self.augment = augment if augment is not None and augment.enabled else None
        self.generator = generator

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float().div_(255)
        if self.augment is not None:
            x = self._random_affine(x)
        return x.sub_(MEAN).div_(STD)

    def _random_affine(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate, shear, scale and translate each image of ``x`` by its own random amount."""
        n, aug = x.shape[0], self.augment
        assert aug is not None

        def uniform(bound: float) -> torch.Tensor:
            return (torch.rand(n, generator=self.generator, dtype=torch.float64) * 2 - 1) * bound

        angle = uniform(math.radians(aug.rotate))
        shear = uniform(math.radians(aug.shear))
        scale = 1 + uniform(aug.scale)
        shift = torch.stack([uniform(aug.translate), uniform(aug.translate)], dim=1) * 2
        # theta maps output coordinates to input coordinates: the inverse of the image motion
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        a = torch.stack([cos, -sin + cos * tan], dim=1) / scale[:, None]
        b = torch.stack([sin, cos + sin * tan], dim=1) / scale[:, None]
        linear = torch.stack([a, b], dim=1)  # n x 2 x 2
        theta = torch.cat([linear, -(linear @ shift[:, :, None])], dim=2).to(x.device, x.dtype)
        grid = F.affine_grid(theta, [n, 1, SIDE, SIDE], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
