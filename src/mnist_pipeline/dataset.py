"""The image-folder Dataset: every digit of a split decoded once and held in memory.

:class:`DigitFolder` reads ``<split>/<label>/<index>.png``, checks the images against the
extract stage's manifest, and serves whole batches by indexing one uint8 tensor
(``__getitems__``), so a training epoch costs no per-sample Python.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.manifest import add_image, check_against_manifest
from mnist_pipeline.mnist import NUM_CLASSES
from mnist_pipeline.png import decode_digits
from mnist_pipeline.runtime import one_thread


class Batch(NamedTuple):
    """One batch as :class:`DigitFolder` serves it."""

    images: torch.Tensor  # uint8, B x 1 x 28 x 28
    labels: torch.Tensor  # int64, B
    index: torch.Tensor  # int64, B: where each image sits in the dataset


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
    """MNIST digits from ``<split>/<label>/<index>.png``, decoded once and held in memory.

    When the folder holds the extract stage's ``manifest.json``, the images read must be
    the ones it lists: an image edited, added or removed since is an error, not data.
    """

    def __init__(self, split_dir: Path) -> None:
        files = scan_split(split_dir)
        digest, pngs = hashlib.sha256(), []
        for path, label in files:
            pngs.append(path.read_bytes())
            add_image(digest, label, int(path.stem), pngs[-1])
        self.sha256 = digest.hexdigest()  # as the manifest records the split
        check_against_manifest(split_dir, len(files), self.sha256)
        pixels = decode_digits(pngs, [str(path) for path, _ in files])
        self.images = torch.from_numpy(pixels).unsqueeze(1)  # N x 1 x 28 x 28 uint8
        self.labels = torch.tensor([label for _, label in files], dtype=torch.int64)

    def hold_out(self, count: int) -> tuple[DigitFolder, DigitFolder]:
        """The first ``len - count`` digits and the last ``count``, as two datasets.

        The training split's last digits make the validation split a recipe is chosen on;
        both parts share this dataset's memory and its ``sha256``.
        """
        if not 0 < count < len(self):
            raise PipelineError(
                f"params: 'data.validation' is {count}, but the split has {len(self)} digits: "
                f"hold out at least 1 and leave at least 1 to train on (0 turns it off)"
            )
        cut = len(self) - count
        return self._part(slice(0, cut)), self._part(slice(cut, None))

    def _part(self, rows: slice) -> DigitFolder:
        part = DigitFolder.__new__(DigitFolder)
        part.sha256 = self.sha256
        part.images, part.labels = self.images[rows], self.labels[rows]
        return part

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices: list[int] | torch.Tensor) -> Batch:
        """One whole batch in a single indexing operation (DataLoader's batched fetch)."""
        index = torch.as_tensor(indices)
        with one_thread():
            images, labels = self.images.index_select(0, index), self.labels.index_select(0, index)
        return Batch(images, labels, index)
