"""DigitFolder: the image folders read, checked against the manifest, and indexed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.data.sources import Splits
from mnist_pipeline.formats.manifest import MANIFEST
from mnist_pipeline.model.dataset import DigitFolder


def test_folder_holds_every_digit_in_index_order(train_set: DigitFolder, small_splits: Splits):
    images, labels = small_splits["train"]
    assert train_set.images.shape == (len(labels), 1, 28, 28)
    assert train_set.images.dtype == torch.uint8 and train_set.labels.dtype == torch.int64
    assert np.array_equal(train_set.images[:, 0].numpy(), images)
    assert np.array_equal(train_set.labels.numpy(), labels)


def test_getitems_returns_what_per_item_indexing_does(train_set: DigitFolder) -> None:
    indices = [5, 0, 999, 5, 123]
    images, labels, index = train_set.__getitems__(indices)
    assert torch.equal(images, torch.stack([train_set[i][0] for i in indices]))
    assert labels.tolist() == [train_set[i][1] for i in indices]
    assert index.tolist() == indices
    tensor_images, _, _ = train_set.__getitems__(torch.tensor(indices))
    assert torch.equal(tensor_images, images)


def test_extract_writes_a_manifest_of_each_split(small_images: Path, small_splits: Splits):
    manifest = json.loads((small_images / MANIFEST).read_text())
    for split, (_, labels) in small_splits.items():
        assert manifest[split]["images"] == len(labels)
        assert manifest[split]["per_class"] == np.bincount(labels, minlength=10).tolist()
    assert manifest["train"]["sha256"] != manifest["test"]["sha256"]


@pytest.mark.parametrize("change", ["edit", "remove", "add"])
def test_folder_changed_since_extraction_is_an_error(
    small_images: Path, tmp_path: Path, change: str
) -> None:
    images = tmp_path / "images"
    shutil.copytree(small_images, images)
    first, second = sorted((images / "test").glob("*/*.png"))[:2]
    if change == "edit":
        first.write_bytes(second.read_bytes())
    elif change == "remove":
        first.unlink()
    else:
        shutil.copy(first, first.with_name("99999.png"))
    DigitFolder.read(images / "train")  # the other split is untouched
    with pytest.raises(PipelineError, match=r"test: its \d+ images differ from what manifest"):
        DigitFolder.read(images / "test")


def test_a_folder_without_its_manifest_is_no_complete_extraction(
    small_images: Path, tmp_path: Path
) -> None:
    images = tmp_path / "images"
    shutil.copytree(small_images, images)
    (images / MANIFEST).unlink()
    with pytest.raises(PipelineError, match="manifest.json: missing, so .* is no complete"):
        DigitFolder.read(images / "test")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="image folder missing"):
        DigitFolder.read(tmp_path / "train")
