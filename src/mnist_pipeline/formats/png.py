"""Encode, check and decode the 28x28 grayscale PNG digits the pipeline stores.

Pillow encodes and decodes them. The extract stage's check of every tarball member is
the one part written here (:func:`check_digit`): it reads the chunks of a plain digit PNG
and inflates its image data with ``zlib``, without Pillow's per-file overhead, which
matters for the extract stage's speed (docs/design.md). Its inflate is bounded by what a
28x28 digit can hold, so a small file that inflates to gigabytes is refused, not read.
Any other file goes to Pillow, which decodes it or says what is wrong with it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import SIDE

ROW = SIDE + 1  # a scanline: its filter-type byte, then one byte per pixel
IMAGE_BYTES = SIDE * ROW  # a digit's image data, inflated
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR of a 28x28 image, 8-bit grayscale, deflate, adaptive filtering, no interlace
DIGIT_HEADER = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
PAETH = 4  # the highest scanline filter type


def encode_png(image: np.ndarray) -> bytes:
    """Encode one uint8 HxW image as a grayscale PNG (same bytes for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def decode_digit(data: bytes, name: str) -> np.ndarray:
    """Decode a PNG that must be 28x28 mode L, with Pillow; errors name ``name``."""
    if not data.startswith(PNG_SIGNATURE):
        raise PipelineError(f"{name}: not a PNG file")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.mode != "L":
                raise PipelineError(f"{name}: image mode is {image.mode}, expected L (8-bit gray)")
            if image.size != (SIDE, SIDE):
                width, height = image.size
                raise PipelineError(f"{name}: image is {width}x{height}, expected {SIDE}x{SIDE}")
            return np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PipelineError(f"{name}: corrupt PNG: {exc}") from exc


def _plain_digit(data: bytes, name: str) -> bool:
    """Whether ``data`` is a plain digit PNG, checked; False for another kind of PNG.

    A plain digit PNG has the signature, a 28x28 8-bit gray non-interlaced header, chunks
    whose CRCs match, no critical chunk but IDAT and IEND, nothing after IEND, and image
    data that inflates to exactly 28 scanlines with known filter types. Image data that
    inflates to more is refused here, whatever else the file holds: a decompression bomb.
    """
    if not data.startswith(PNG_SIGNATURE):
        return False
    pos, end, idat = len(PNG_SIGNATURE), len(data), []
    kind = b""
    while kind != b"IEND":
        if pos + 12 > end:
            return False
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > end:
            return False
        (crc,) = struct.unpack_from(">I", data, body_end)
        if zlib.crc32(data[pos + 4 : body_end]) != crc:
            return False
        body = data[pos + 8 : body_end]
        if pos == len(PNG_SIGNATURE):
            if kind != b"IHDR" or body != DIGIT_HEADER:
                return False
        elif kind == b"IDAT":
            idat.append(body)
        elif not kind[0] & 0x20 and kind != b"IEND":  # critical: PLTE, a second IHDR...
            return False
        pos = body_end + 4
    if pos != end:
        return False
    try:
        inflater = zlib.decompressobj()
        rows = inflater.decompress(b"".join(idat), IMAGE_BYTES + 1)
    except zlib.error:
        return False
    if len(rows) > IMAGE_BYTES or inflater.unconsumed_tail:
        raise PipelineError(f"{name}: image data inflates past the {IMAGE_BYTES} bytes of a digit")
    if not inflater.eof or inflater.unused_data or len(rows) != IMAGE_BYTES:
        return False
    return max(rows[::ROW]) <= PAETH


def check_digit(data: bytes, name: str) -> None:
    """Fail, naming ``name``, unless ``data`` is a PNG that decodes to a 28x28 gray digit."""
    if not _plain_digit(data, name):
        decode_digit(data, name)


def decode_digits(pngs: Sequence[bytes], names: Sequence[str]) -> np.ndarray:
    """Decode PNG digits into an N x 28 x 28 uint8 array; an error names the file at fault."""
    images = np.empty((len(pngs), SIDE, SIDE), np.uint8)
    for i, (data, name) in enumerate(zip(pngs, names, strict=True)):
        images[i] = decode_digit(data, name)
    return images
