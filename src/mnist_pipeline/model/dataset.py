"""The image-folder Dataset: every digit of a split decoded once and held in memory.

:meth:`DigitFolder.read` reads ``<split>/<label>/<index>.png``, checks the images against
the extract stage's manifest, and the dataset serves whole batches by indexing one uint8
tensor (``__getitems__``), so a training epoch costs no per-sample Python.
:func:`read_splits` reads what a run trains and is measured on, holding out a validation
part of the training split when asked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import NUM_CLASSES
from mnist_pipeline.formats.manifest import add_image, check_against_manifest
from mnist_pipeline.formats.png import decode_digits
from mnist_pipeline.model.runtime import one_thread


class Batch(NamedTuple):
    """One batch as :class:`DigitFolder` serves it."""

    images: torch.Tensor  # uint8, B x 1 x 28 x 28
    labels: torch.Tensor  # int64, B
    index: torch.Tensor  # int64, B: where each image sits in the dataset


def scan_split(split_dir: Path) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for every ``<label>/<index>.png`` under ``split_dir``, by index."""
    if not split_dir.is_dir():
        raise PipelineError(f"{split_dir}: image folder missing (extract the images first)")
    files = [
        (path, label)
        for label in range(NUM_CLASSES)
        for path in (split_dir / str(label)).glob("*.png")
    ]
    if not files:
        raise PipelineError(f"{split_dir}: holds no <label>/<index>.png images")
    return sorted(files, key=lambda item: (int(item[0].stem), item[1]))


class DigitFolder(Dataset[tuple[torch.Tensor, int]]):
    """MNIST digits in memory: uint8 N x 1 x 28 x 28 ``images``, int64 ``labels``, and the
    ``sha256`` of the split they were read from, as the images' manifest records it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, sha256: str) -> None:
        self.images, self.labels, self.sha256 = images, labels, sha256

    @classmethod
    def read(cls, split_dir: Path) -> DigitFolder:
        """Decode every PNG under ``split_dir``, after checking them against the manifest."""
        files = scan_split(split_dir)
        digest, pngs = hashlib.sha256(), []
        for path, label in files:
            pngs.append(path.read_bytes())
            add_image(digest, label, int(path.stem), pngs[-1])
        check_against_manifest(split_dir, len(files), digest.hexdigest())
        pixels = decode_digits(pngs, [str(path) for path, _ in files])
        labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        return cls(torch.from_numpy(pixels).unsqueeze(1), labels, digest.hexdigest())

    def hold_out(self, count: int) -> tuple[DigitFolder, DigitFolder]:
        """The first ``len - count`` digits and the last ``count``, as two datasets.

        Both parts share this dataset's memory and its ``sha256``.
        """
        if not 0 < count < len(self):
            raise PipelineError(
                f"a validation split of {count} digits needs a training split of more than "
                f"{count}; it has {len(self)}"
            )
        cut = len(self) - count
        return (
            DigitFolder(self.images[:cut], self.labels[:cut], self.sha256),
            DigitFolder(self.images[cut:], self.labels[cut:], self.sha256),
        )

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


class Splits(NamedTuple):
    """What a run reads: the digits it trains on, the test split, and a held-out part."""

    train: DigitFolder | None  # None where only evaluation is needed
    test: DigitFolder
    validation: DigitFolder | None  # the last training digits, with a validation split

    def digests(self) -> dict[str, str]:
        """The sha256 of each split read, as a result's provenance records them."""
        read = {"train": self.train, "test": self.test, "validation": self.validation}
        return {name: part.sha256 for name, part in read.items() if part is not None}

    def sizes(self) -> dict[str, int]:
        """How many digits each part holds: a held-out part shares its split's digest."""
        parts = {"train": self.train, "test": self.test, "validation": self.validation}
        return {name: len(part) for name, part in parts.items() if part is not None}


def read_splits(images_dir: Path, validation: int = 0, train: bool = True) -> Splits:
    """The test split, and the training split with its last ``validation`` digits held out.

    ``train``: False when only the test and validation digits are needed (evaluation).
    """
    test = DigitFolder.read(images_dir / "test")
    if not validation and not train:
        return Splits(None, test, None)
    full = DigitFolder.read(images_dir / "train")
    if not validation:
        return Splits(full, test, None)
    kept, held_out = full.hold_out(validation)
    return Splits(kept if train else None, test, held_out)
