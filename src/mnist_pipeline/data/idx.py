"""Read the IDX files MNIST is published in (raw or gzip-compressed)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnist_pipeline.core.errors import PipelineError

UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Return the uint8 array stored in the IDX file ``path``, which must have ``ndim`` dims."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise PipelineError(f"{path}: cannot read: {exc}") from exc
    if len(data) < 4:
        raise PipelineError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype, dims = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or dtype != UBYTE or dims != ndim:
        raise PipelineError(
            f"{path}: wrong magic number 0x{data[:4].hex()}, expected 0x0000{UBYTE:02x}{ndim:02x}"
            f" (unsigned bytes, {ndim} dimension{'s' if ndim > 1 else ''})"
        )
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise PipelineError(
            f"{path}: dimensions {shape} need {expected} bytes, the file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
