"""Encode and decode the 28x28 grayscale PNG digits the pipeline stores.

Decoding 70,000 tiny files one by one through Pillow costs more in per-file overhead
than in inflating them, so :func:`decode_digits` reads the common case itself: a 28x28
8-bit gray, non-interlaced PNG with valid chunk CRCs. It inflates each file with
``zlib`` and undoes the scanline filters of all files at once with numpy. Any other file
goes to Pillow, which decodes it or says what is wrong with it.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_pipeline.errors import PipelineError
from mnist_pipeline.mnist import SIDE

ROW = SIDE + 1  # a scanline: its filter-type byte, then one byte per pixel
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR of a 28x28 image, 8-bit grayscale, deflate, adaptive filtering, no interlace
DIGIT_HEADER = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
NONE, SUB, UP, AVERAGE, PAETH = range(5)


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


def scanlines(data: bytes) -> bytes | None:
    """The 28 inflated, still filtered scanlines of a plain digit PNG; None for other files.

    A plain digit PNG has the signature, a 28x28 8-bit gray non-interlaced header, chunks
    whose CRCs match, no critical chunk but IDAT and IEND, nothing after IEND, and image
    data that inflates to exactly 28 scanlines with known filter types.
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    pos, end, idat = len(PNG_SIGNATURE), len(data), []
    kind = b""
    while kind != b"IEND":
        if pos + 12 > end:
            return None
        length, kind = struct.unpack_from(">I4s", data, pos)
        body_end = pos + 8 + length
        if body_end + 4 > end:
            return None
        (crc,) = struct.unpack_from(">I", data, body_end)
        if zlib.crc32(data[pos + 4 : body_end]) != crc:
            return None
        body = data[pos + 8 : body_end]
        if pos == len(PNG_SIGNATURE):
            if kind != b"IHDR" or body != DIGIT_HEADER:
                return None
        elif kind == b"IDAT":
            idat.append(body)
        elif not kind[0] & 0x20 and kind != b"IEND":  # critical: PLTE, a second IHDR...
            return None
        pos = body_end + 4
    if pos != end:
        return None
    try:
        inflater = zlib.decompressobj()
        rows = inflater.decompress(b"".join(idat))
    except zlib.error:
        return None
    if not inflater.eof or inflater.unused_data or len(rows) != SIDE * ROW:
        return None
    if max(rows[::ROW]) > PAETH:
        return None
    return rows


def _predict(kind: int, left: np.ndarray, up: np.ndarray, upper_left: np.ndarray) -> np.ndarray:
    """The AVERAGE or PAETH prediction of one pixel column (int16, one entry per image)."""
    if kind == AVERAGE:
        return (left + up) // 2
    guess = left + up - upper_left
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - upper_left)
    return np.where(
        (to_left <= to_up) & (to_left <= to_corner),
        left,
        np.where(to_up <= to_corner, up, upper_left),
    )


def unfilter(rows: np.ndarray) -> np.ndarray:
    """Undo the PNG scanline filters of N images at once: N x 28 x 29 -> N x 28 x 28 uint8.

    Row by row over all images: SUB is a running sum and UP an addition (uint8 arithmetic
    wraps as PNG's does); AVERAGE and PAETH depend on the pixel to the left, so they go
    column by column over just the images whose row uses them.
    """
    filters, pixels = rows[:, :, 0], rows[:, :, 1:].copy()
    above = np.zeros((len(rows), SIDE), np.uint8)
    for r in range(SIDE):
        line, kind = pixels[:, r], filters[:, r]  # line is a view: edits land in pixels
        if (sub := kind == SUB).any():
            line[sub] = np.cumsum(line[sub], axis=1, dtype=np.uint8)
        if (up := kind == UP).any():
            line[up] += above[up]
        for code in (AVERAGE, PAETH):
            chosen = np.flatnonzero(kind == code)
            if not chosen.size:
                continue
            row, prior = line[chosen].astype(np.int16), above[chosen].astype(np.int16)
            zero = np.zeros(len(chosen), np.int16)
            for c in range(SIDE):
                left, upper_left = (row[:, c - 1], prior[:, c - 1]) if c else (zero, zero)
                row[:, c] = (row[:, c] + _predict(code, left, prior[:, c], upper_left)) & 0xFF
            line[chosen] = row.astype(np.uint8)
        above = line
    return pixels


def check_digit(data: bytes, name: str) -> None:
    """Fail, naming ``name``, unless ``data`` is a PNG that decodes to a 28x28 gray digit."""
    if scanlines(data) is None:
        decode_digit(data, name)


def decode_digits(pngs: Sequence[bytes], names: Sequence[str]) -> np.ndarray:
    """Decode PNG digits into an N x 28 x 28 uint8 array; an error names the file at fault."""
    rows, by_pillow = [], {}
    blank = bytes(SIDE * ROW)
    for i, (data, name) in enumerate(zip(pngs, names, strict=True)):
        lines = scanlines(data)
        if lines is None:
            by_pillow[i] = decode_digit(data, name)
            lines = blank
        rows.append(lines)
    stacked = np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), SIDE, ROW)
    images = unfilter(stacked)
    for i, image in by_pillow.items():
        images[i] = image
    return images
