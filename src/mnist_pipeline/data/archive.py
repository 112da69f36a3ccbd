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
from typing import BinaryIO

import numpy as np

from mnist_pipeline.core.atomic import atomic_path
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import NUM_CLASSES
from mnist_pipeline.formats.png import check_digit, decode_digits, encode_png

MEMBER_NAME = re.compile(r"(?P<index>\d+)_(?P<label>\d+)\.png")
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Digit:
    """One checked tarball member: its index, label, PNG bytes and name."""

    index: int
    label: int
    png: bytes
    member: str = ""


def tarball_path(raw_dir: Path, split: str) -> Path:
    """Where the fetch stage writes a split's tarball, and the extract stage reads it."""
    return raw_dir / f"mnist_{split}.tar.gz"


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


class _StrictTarInfo(tarfile.TarInfo):
    """A header reader that fails where ``tarfile`` would quietly end the archive.

    ``tarfile`` treats a truncated, empty or corrupt header after the first member as the
    end of the archive, so a cut-off tarball would read as a shorter, valid one.
    """

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:  # the zero block that marks a proper end
            raise
        except tarfile.EmptyHeaderError as exc:
            raise tarfile.ReadError("no end-of-archive marker: truncated") from exc
        except tarfile.HeaderError as exc:  # truncated or bad-checksum header
            raise tarfile.ReadError(f"bad header at byte {tarfile_.offset}: {exc}") from exc


def _open_stream(raw: BinaryIO) -> BinaryIO:
    """``raw`` itself for a plain tar, or a gzip reader over it (which checks CRC and size)."""
    magic = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if magic == GZIP_MAGIC else raw


def _drain(stream: BinaryIO) -> None:
    """Read ``stream`` to its end: for gzip, this checks the CRC and length in its trailer."""
    while stream.read(1 << 20):
        pass


def _checked_digits(tar_path: Path, stream: BinaryIO) -> Iterator[Digit]:
    with tarfile.open(fileobj=stream, mode="r|", tarinfo=_StrictTarInfo) as tar:
        for member in tar:
            match = _check_member(tar_path, member)
            if match is None:
                continue
            handle = tar.extractfile(member)
            assert handle is not None  # a regular file always has a handle
            data = handle.read()
            check_digit(data, f"{tar_path}: member '{member.name}'")
            yield Digit(int(match["index"]), int(match["label"]), data, member.name)


def iter_digits(tar_path: Path) -> Iterator[Digit]:
    """Yield every member of ``tar_path`` (tar or tar.gz) after checking it.

    The whole file is read, so a truncated or corrupt archive fails here, not silently; a
    bad member in a corrupt gzip file is reported as the corrupt file it comes from.
    """
    try:
        with tar_path.open("rb") as raw, _open_stream(raw) as stream:
            try:
                yield from _checked_digits(tar_path, stream)
            except PipelineError:
                _drain(stream)  # raises if the archive itself is broken: the better message
                raise
            _drain(stream)
    except FileNotFoundError as exc:
        raise PipelineError(f"{tar_path}: missing") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise PipelineError(f"{tar_path}: corrupt or truncated archive: {exc}") from exc


def read_tarball(tar_path: Path, expected_count: int | None = None) -> list[Digit]:
    """Read and check every digit of ``tar_path``, sorted by index.

    Fails on duplicate indices, an empty archive, or a count other than ``expected_count``.
    """
    digits: dict[int, Digit] = {}
    for digit in iter_digits(tar_path):
        if (first := digits.get(digit.index)) is not None:
            raise PipelineError(
                f"{tar_path}: members '{first.member}' and '{digit.member}' share index "
                f"{digit.index}"
            )
        digits[digit.index] = digit
    if not digits:
        raise PipelineError(f"{tar_path}: holds no digits")
    if expected_count is not None and len(digits) != expected_count:
        raise PipelineError(f"{tar_path}: holds {len(digits)} digits, expected {expected_count}")
    return [digits[index] for index in sorted(digits)]


def digits_to_arrays(digits: list[Digit]) -> tuple[np.ndarray, np.ndarray]:
    """Stack checked digits into (N x 28 x 28 images, N labels), both uint8."""
    images = decode_digits([digit.png for digit in digits], [digit.member for digit in digits])
    labels = np.array([digit.label for digit in digits], dtype=np.uint8)
    return images, labels
