"""Deterministic tarballs of PNG digits, and a reader that checks every member.

A tarball holds one split; its members are ``<split>/<index:05d>_<label>.png``. Writing
the same pixels twice gives the same bytes: sorted members, fixed mtime, owner and mode,
and a gzip header with mtime 0 and no file name.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from mnist_pipeline.atomic import atomic_path
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.png import decode_digit, encode_png

MEMBER_NAME = re.compile(r"(?P<index>\d+)_(?P<label>\d+)\.png")
NUM_CLASSES = 10


@dataclass(frozen=True)
class Digit:
    """One checked tarball member: its index, label, PNG bytes and decoded pixels."""

    index: int
    label: int
    png: bytes
    pixels: np.ndarray


def write_tarball(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write ``images`` (N x 28 x 28 uint8) and ``labels`` as a byte-stable tar.gz."""
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            data = encode_png(image)
            info = tarfile.TarInfo(f"{split}/{index:05d}_{int(label)}.png")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "a symlink"
    if member.islnk():
        return "a hardlink"
    if member.isdev():
        return "a device"
    return "a special file"


def _check_member(tar_path: Path, member: tarfile.TarInfo) -> re.Match[str] | None:
    """Reject unsafe members; return the name match for a digit, None for a directory."""
    where = f"{tar_path}: member '{member.name}'"
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        raise PipelineError(f"{where} has an unsafe path")
    if member.isdir():
        return None
    if not member.isfile():
        raise PipelineError(f"{where} is {_member_kind(member)}, expected a regular file")
    match = MEMBER_NAME.fullmatch(parts[-1])
    if match is None:
        raise PipelineError(f"{where} is not named <index>_<label>.png")
    if int(match["label"]) >= NUM_CLASSES or len(match["label"]) > 1:
        raise PipelineError(f"{where} has label {match['label']}, expected 0-9")
    return match


def iter_digits(tar_path: Path) -> Iterator[Digit]:
    """Yield every member of ``tar_path`` (tar or tar.gz) after checking it."""
    try:
        with tarfile.open(tar_path, mode="r|*") as tar:
            for member in tar:
                match = _check_member(tar_path, member)
                if match is None:
                    continue
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file always has a handle
                data = handle.read()
                pixels = decode_digit(data, f"{tar_path}: member '{member.name}'")
                yield Digit(int(match["index"]), int(match["label"]), data, pixels)
    except FileNotFoundError as exc:
        raise PipelineError(f"{tar_path}: missing") from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise PipelineError(f"{tar_path}: corrupt or truncated archive: {exc}") from exc


def read_tarball(tar_path: Path, expected_count: int | None = None) -> list[Digit]:
    """Read and check every digit of ``tar_path``, sorted by index.

    Fails on duplicate indices, an empty archive, or a count other than ``expected_count``.
    """
    digits: dict[int, Digit] = {}
    for digit in iter_digits(tar_path):
        if digit.index in digits:
            raise PipelineError(f"{tar_path}: index {digit.index} appears twice")
        digits[digit.index] = digit
    if not digits:
        raise PipelineError(f"{tar_path}: holds no digits")
    if expected_count is not None and len(digits) != expected_count:
        raise PipelineError(f"{tar_path}: holds {len(digits)} digits, expected {expected_count}")
    return [digits[index] for index in sorted(digits)]


def digits_to_arrays(digits: list[Digit]) -> tuple[np.ndarray, np.ndarray]:
    """Stack checked digits into (N x 28 x 28 images, N labels), both uint8."""
    images = np.stack([digit.pixels for digit in digits])
    labels = np.array([digit.label for digit in digits], dtype=np.uint8)
    return images, labels
