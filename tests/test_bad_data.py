"""Bad data: every case stops with an error naming the file, member or value at fault, and
leaves nothing at the stage's output path. The bad inputs are built from the small real slice."""

from __future__ import annotations

import gzip
import io
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import REPO_ROOT, SMALL_MNIST, fast_params, run
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import DataParams
from mnist_pipeline.data.archive import read_tarball
from mnist_pipeline.data.extract import extract
from mnist_pipeline.data.fetch import fetch
from mnist_pipeline.data.sources import Splits, from_directory
from mnist_pipeline.formats.png import encode_png

Member = tuple[tarfile.TarInfo, bytes | None]


def regular(name: str, data: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.devmajor, info.devminor = 1, 3
    return info, None


def write_tar(path: Path, members: list[Member]) -> None:
    with tarfile.open(path, "w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def png_of(image: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def raw_dir(tmp_path: Path, small_raw: Path) -> Path:
    """data/raw holding the small slice's two tarballs, ready to be spoiled by a test."""
    raw = tmp_path / "data" / "raw"
    shutil.copytree(small_raw, raw)
    return raw


def assert_fails_leaving_nothing(
    raw: Path, match: list[str], verify: bool = False
) -> PipelineError:
    """extract() must raise naming every string of ``match``, and write no image folder."""
    images = raw.parent / "images"
    with pytest.raises(PipelineError) as caught:
        extract(raw, images, verify=verify)
    for text in match:
        assert text in str(caught.value)
    assert not images.exists()
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no temporary folder left
    return caught.value


# --- one spoiled member in an otherwise valid tarball ----------------------------------

BadMembers = Callable[[Splits], list[Member]]


def digit(splits: Splits, index: int = 1) -> bytes:
    return encode_png(splits["train"][0][index])


BAD_MEMBERS: dict[str, tuple[BadMembers, list[str]]] = {
    "dot-dot": (
        lambda s: [regular("train/../00001_0.png", digit(s))],
        ["'train/../00001_0.png'", "unsafe path"],
    ),
    "absolute": (
        lambda s: [regular("/tmp/00001_0.png", digit(s))],
        ["'/tmp/00001_0.png'", "unsafe path"],
    ),
    "symlink": (
        lambda s: [special("train/00001_0.png", tarfile.SYMTYPE, "/etc/passwd")],
        ["'train/00001_0.png'", "is a symlink"],
    ),
    "hardlink": (
        lambda s: [special("train/00001_0.png", tarfile.LNKTYPE, "train/00000_5.png")],
        ["'train/00001_0.png'", "is a hardlink"],
    ),
    "device": (
        lambda s: [special("train/00001_0.png", tarfile.CHRTYPE)],
        ["'train/00001_0.png'", "is a device"],
    ),
    "not-png": (
        lambda s: [regular("train/00001_0.png", b"GIF89a" + bytes(100))],
        ["'train/00001_0.png'", "not a PNG"],
    ),
    "corrupt-png": (
        lambda s: [regular("train/00001_0.png", digit(s)[:60])],
        ["'train/00001_0.png'", "corrupt PNG"],
    ),
    "rgb": (
        lambda s: [regular("train/00001_0.png", png_of(s["train"][0][1], "RGB"))],
        ["'train/00001_0.png'", "mode is RGB"],
    ),
    "32x32": (
        lambda s: [regular("train/00001_0.png", png_of(np.pad(s["train"][0][1], 2)))],
        ["'train/00001_0.png'", "is 32x32, expected 28x28"],
    ),
    "label-12": (
        lambda s: [regular("train/00001_12.png", digit(s))],
        ["'train/00001_12.png'", "label 12, expected 0-9"],
    ),
    "duplicate-index": (
        lambda s: [regular("train/00000_3.png", digit(s))],
        ["'train/00000_5.png'", "'train/00000_3.png'", "share index 0"],
    ),
}


@pytest.mark.parametrize("case", BAD_MEMBERS, ids=list(BAD_MEMBERS))
def test_bad_member_is_named_and_nothing_is_extracted(
    case: str, raw_dir: Path, small_splits: Splits
) -> None:
    bad_members, match = BAD_MEMBERS[case]
    tarball = raw_dir / "mnist_train.tar.gz"
    first = regular("train/00000_5.png", digit(small_splits, 0))
    write_tar(tarball, [first, *bad_members(small_splits)])
    assert_fails_leaving_nothing(raw_dir, [str(tarball), *match])


def stage(workdir: Path, name: str, data: dict) -> tuple[int, str]:
    """Run ``stages/<name>.py`` in ``workdir`` with the fast params and ``data`` settings."""
    params = fast_params()
    params["data"].update(data)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    result = run([sys.executable, str(REPO_ROOT / "stages" / f"{name}.py")], workdir, check=False)
    return result.returncode, result.stderr


def test_extract_stage_rejects_unsafe_member(raw_dir: Path, small_splits: Splits) -> None:
    tarball = raw_dir / "mnist_test.tar.gz"
    write_tar(tarball, [regular("test/../../00000_7.png", digit(small_splits))])
    code, stderr = stage(raw_dir.parents[1], "extract", {"verify": False})
    assert code == 1
    member = "member 'test/../../00000_7.png' has an unsafe path"
    assert f"data/raw/mnist_test.tar.gz: {member}" in stderr
    assert "Traceback" not in stderr
    assert not (raw_dir.parent / "images").exists()


# --- the archive itself ---------------------------------------------------------------


def test_truncated_gzip_is_an_error_wherever_it_is_cut(raw_dir: Path) -> None:
    tarball = raw_dir / "mnist_test.tar.gz"
    whole = tarball.read_bytes()
    # every cut must fail: tarfile alone reads a cut at a header as a shorter, valid archive
    for cut in np.linspace(10, len(whole) - 1, 40).astype(int):
        tarball.write_bytes(whole[:cut])
        with pytest.raises(PipelineError, match="corrupt or truncated archive"):
            read_tarball(tarball)
    tarball.write_bytes(whole[: len(whole) // 2])
    assert_fails_leaving_nothing(raw_dir, [str(tarball), "Compressed file ended"])


def test_tar_cut_at_a_member_boundary_inside_valid_gzip(raw_dir: Path) -> None:
    tarball = raw_dir / "mnist_test.tar.gz"
    plain = gzip.decompress(tarball.read_bytes())
    tarball.write_bytes(gzip.compress(plain[: 20 * 1024]))  # 10 whole members, no end marker
    assert_fails_leaving_nothing(raw_dir, [str(tarball), "no end-of-archive marker"])


@pytest.mark.parametrize("where", ["middle", "crc"])
def test_corrupt_gzip(where: str, raw_dir: Path) -> None:
    tarball = raw_dir / "mnist_train.tar.gz"
    data = bytearray(tarball.read_bytes())
    position = len(data) // 2 if where == "middle" else len(data) - 8
    data[position] ^= 0xFF
    tarball.write_bytes(bytes(data))
    assert_fails_leaving_nothing(raw_dir, [str(tarball), "corrupt or truncated archive"])


def test_missing_split_tarball(raw_dir: Path) -> None:
    (raw_dir / "mnist_test.tar.gz").unlink()
    assert_fails_leaving_nothing(raw_dir, [f"{raw_dir / 'mnist_test.tar.gz'}: missing"])


def test_missing_split_in_source_directory(tmp_path: Path, small_raw: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(small_raw / "mnist_train.tar.gz", source / "train.tar.gz")
    with pytest.raises(PipelineError, match=r"split 'test' is missing"):
        fetch(DataParams(source=str(source), verify=False), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_extract_checks_counts_when_verify_is_on(raw_dir: Path) -> None:
    match = [f"{raw_dir / 'mnist_train.tar.gz'}: holds 1000 digits, expected 60000"]
    assert_fails_leaving_nothing(raw_dir, match, verify=True)


def test_fetch_stage_checks_counts_when_verify_is_on(tmp_path: Path) -> None:
    code, stderr = stage(tmp_path, "fetch", {"source": str(SMALL_MNIST), "verify": True})
    assert code == 1
    assert "train: 1000 images, expected 60000" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "data").exists()


# --- IDX sources ----------------------------------------------------------------------


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A copy of the small slice's four IDX files, uncompressed, ready to be spoiled."""
    source = tmp_path / "idx"
    source.mkdir()
    for path in SMALL_MNIST.glob("*.gz"):
        (source / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    return source


def fetch_fails(source: Path, match: list[str], verify: bool = False) -> None:
    raw = source.parent / "raw"
    with pytest.raises(PipelineError) as caught:
        fetch(DataParams(source=str(source), verify=verify), raw)
    for text in match:
        assert text in str(caught.value)
    assert not raw.exists()


def test_idx_wrong_magic_number(idx_dir: Path) -> None:
    labels = idx_dir / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[3] = 3  # claims three dimensions
    labels.write_bytes(bytes(data))
    fetch_fails(idx_dir, [str(labels), "wrong magic number 0x00000803, expected 0x00000801"])


def test_idx_dimensions_disagree_with_the_data(idx_dir: Path) -> None:
    images = idx_dir / "t10k-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[4:8] = (501).to_bytes(4, "big")
    images.write_bytes(bytes(data))
    fetch_fails(idx_dir, [str(images), "dimensions (501, 28, 28) need"])


def test_idx_images_not_28x28(idx_dir: Path) -> None:
    images = idx_dir / "train-images-idx3-ubyte"
    data = bytearray(images.read_bytes())
    data[8:16] = (14).to_bytes(4, "big") + (56).to_bytes(4, "big")  # same bytes, wrong shape
    images.write_bytes(bytes(data))
    fetch_fails(idx_dir, [str(images), "images are (14, 56), expected 28x28"])


def test_idx_label_out_of_range(idx_dir: Path) -> None:
    labels = idx_dir / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8 + 17] = 12
    labels.write_bytes(bytes(data))
    fetch_fails(idx_dir, [str(labels), "label 12 at index 17 is not 0-9"])


def test_truncated_gzip_idx(tmp_path: Path) -> None:
    source = tmp_path / "idx"
    shutil.copytree(SMALL_MNIST, source)
    labels = source / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-20])
    fetch_fails(source, [str(labels), "cannot read"])


def test_checksum_mismatch_with_canonical_counts(idx_dir: Path, small_splits: Splits) -> None:
    """Right counts, wrong pixels: only the canonical sha256 can tell."""
    for split, count, prefix in (("train", 60_000, "train"), ("test", 10_000, "t10k")):
        images, labels = (np.resize(a, (count, *a.shape[1:])) for a in small_splits[split])
        header = b"\0\0\x08\x03" + b"".join(n.to_bytes(4, "big") for n in images.shape)
        (idx_dir / f"{prefix}-images-idx3-ubyte").write_bytes(header + images.tobytes())
        header = b"\0\0\x08\x01" + count.to_bytes(4, "big")
        (idx_dir / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.tobytes())
    assert len(from_directory(idx_dir)["train"][0]) == 60_000
    fetch_fails(idx_dir, ["train images: sha256", "differs from canonical MNIST"], verify=True)
