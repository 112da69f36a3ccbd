"""Loading MNIST from a local directory, the canonical checks, and byte-stable tarballs."""

from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.data.archive import digits_to_arrays, read_tarball, tarball_path, write_tarball
from mnist_pipeline.data.sources import Splits, check_splits, from_directory, load_mnist


def test_idx_directory_gives_both_splits(small_splits: Splits) -> None:
    train_images, train_labels = small_splits["train"]
    assert train_images.shape == (1000, 28, 28) and train_images.dtype == np.uint8
    # canonical MNIST starts with these labels
    assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert small_splits["test"][0].shape == (500, 28, 28)


def test_a_directory_source_is_a_path(small_splits: Splits) -> None:
    loaded = load_mnist(str(Path(__file__).parent / "data" / "mnist-small"))
    assert np.array_equal(loaded["test"][1], small_splits["test"][1])


def test_tarball_round_trip_keeps_pixels_labels_and_names(
    small_raw: Path, small_splits: Splits
) -> None:
    digits = read_tarball(tarball_path(small_raw, "test"))
    images, labels = digits_to_arrays(digits)
    assert np.array_equal(images, small_splits["test"][0])
    assert np.array_equal(labels, small_splits["test"][1])
    assert [d.index for d in digits] == list(range(500))


def test_tarballs_are_byte_identical_on_every_write(tmp_path: Path, small_splits: Splits) -> None:
    images, labels = small_splits["test"]
    write_tarball(tmp_path / "a.tar.gz", "test", images, labels)
    write_tarball(tmp_path / "b.tar.gz", "test", images, labels)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_tarball_members_are_named_split_index_label(small_raw: Path) -> None:
    import tarfile

    with tarfile.open(tarball_path(small_raw, "train")) as tar:
        members = tar.getmembers()
    assert members[0].name == "train/00000_5.png"
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}
    assert [m.name for m in members] == sorted(m.name for m in members)


def test_tarball_directory_is_a_source_too(small_raw: Path, small_splits: Splits) -> None:
    loaded = from_directory(small_raw)  # holds mnist_train.tar.gz and mnist_test.tar.gz
    assert np.array_equal(loaded["train"][0], small_splits["train"][0])


def test_verify_rejects_a_subset_and_names_the_split(small_splits: Splits) -> None:
    check_splits(small_splits, verify=False)
    with pytest.raises(PipelineError, match="train: 1000 images, expected 60000"):
        check_splits(small_splits, verify=True)
