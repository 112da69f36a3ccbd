"""The extract stage writes the class-folder layout that ImageFolder reads."""

from pathlib import Path

import numpy as np
from PIL import Image

from mnist_pipeline.data.sources import Splits


def test_layout_is_split_label_index(small_images: Path, small_splits: Splits) -> None:
    for split, (images, labels) in small_splits.items():
        files = sorted((small_images / split).glob("*/*.png"))
        assert len(files) == len(labels)
        assert sorted(p.name for p in (small_images / split).iterdir()) == [
            str(d) for d in range(10)
        ]
        first = small_images / split / str(labels[0]) / "00000.png"
        assert np.array_equal(np.asarray(Image.open(first)), images[0])


def test_torchvision_imagefolder_reads_it(small_images: Path, small_splits: Splits) -> None:
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(small_images / "test"))
    assert len(folder) == 500
    assert folder.classes == [str(d) for d in range(10)]
    counts = np.bincount([label for _, label in folder.samples], minlength=10)
    assert np.array_equal(counts, np.bincount(small_splits["test"][1], minlength=10))
