"""The PNG digits: the check recognises every plain digit PNG, Pillow decodes them, and a bad
file is an error naming it."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import SIDE
from mnist_pipeline.data.sources import Splits
from mnist_pipeline.formats.png import (
    IMAGE_BYTES,
    PNG_SIGNATURE,
    ROW,
    _plain_digit,
    check_digit,
    decode_digit,
    decode_digits,
    encode_png,
)

AVERAGE, PAETH = 3, 4  # PNG's scanline filter types that Pillow never writes


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def rows_of(png: bytes) -> bytes:
    """The inflated, still filtered scanlines of a plain digit PNG (Pillow's, one IDAT)."""
    start = png.index(b"IDAT") + 4
    (length,) = struct.unpack(">I", png[start - 8 : start - 4])
    return zlib.decompress(png[start : start + length])


def handmade_png(
    rows: bytes, header: bytes | None = None, extra: bytes = b"", idat: bytes | None = None
) -> bytes:
    """A PNG from raw (filter byte + pixels) scanlines: Pillow never writes AVERAGE rows."""
    header = header or struct.pack(">IIBBBBB", SIDE, SIDE, 8, 0, 0, 0, 0)
    idat = zlib.compress(rows) if idat is None else idat
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00ancillary: the check accepts it")
        + chunk(b"IDAT", idat[:10])
        + chunk(b"IDAT", idat[10:])
        + chunk(b"IEND", b"")
        + extra
    )


def filtered(image: np.ndarray, kinds: list[int]) -> bytes:
    """Filter ``image`` row by row with ``kinds`` as a PNG encoder would."""
    pixels = image.astype(np.int16)
    out = bytearray()
    for r, kind in enumerate(kinds):
        row = pixels[r]
        up = pixels[r - 1] if r else np.zeros(SIDE, np.int16)
        left = np.concatenate([[0], row[:-1]])
        corner = np.concatenate([[0], up[:-1]])
        if kind == AVERAGE:
            predicted = (left + up) // 2
        elif kind == PAETH:
            guess = left + up - corner
            pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
            predicted = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
        else:
            predicted = {0: np.zeros(SIDE, np.int16), 1: left, 2: up}[kind]
        out += bytes([kind]) + bytes(((row - predicted) & 0xFF).astype(np.uint8))
    return bytes(out)


def test_the_check_recognises_real_digits_and_they_decode_to_their_pixels(
    small_splits: Splits,
) -> None:
    images, _ = small_splits["train"]
    pngs = [encode_png(image) for image in images]
    assert all(_plain_digit(png, "x") for png in pngs)  # none left to Pillow's check
    decoded = decode_digits(pngs, [f"digit {i}" for i in range(len(pngs))])
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, images)
    used = {png_rows[r * ROW] for png_rows in map(rows_of, pngs) for r in range(SIDE)}
    assert {0, 1, 2, 4} <= used  # Pillow's adaptive filters all occur


def test_the_check_accepts_every_filter_type(small_splits: Splits) -> None:
    image = small_splits["test"][0][7]
    for kinds in ([AVERAGE] * SIDE, [PAETH] * SIDE, [r % 5 for r in range(SIDE)]):
        png = handmade_png(filtered(image, kinds))
        assert _plain_digit(png, "x")
        check_digit(png, "x")
        assert np.array_equal(decode_digits([png], ["x"])[0], image)


def test_other_pngs_go_to_pillow(small_splits: Splits) -> None:
    image = small_splits["test"][0][3]
    trailing = handmade_png(filtered(image, [0] * SIDE), extra=b"junk after IEND")
    assert not _plain_digit(trailing, "x")
    check_digit(trailing, "x")  # Pillow decodes it: no error
    assert np.array_equal(decode_digit(trailing, "x"), image)


RGB_HEADER = struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0)


@pytest.mark.parametrize(
    ("png", "message"),
    [
        (b"GIF89a", "not a PNG"),
        (encode_png(np.zeros((32, 32), np.uint8)), "is 32x32, expected 28x28"),
        (handmade_png(bytes(SIDE * ROW), RGB_HEADER), "mode is RGB"),
        (encode_png(np.zeros((SIDE, SIDE), np.uint8))[:-20], "corrupt PNG"),
    ],
    ids=["gif", "size", "rgb-header", "truncated"],
)
def test_bad_pngs_fail_naming_the_file(png: bytes, message: str) -> None:
    name = "digits/7.png"
    for check in (lambda: check_digit(png, name), lambda: decode_digits([png], [name])):
        with pytest.raises(PipelineError, match=message) as error:
            check()
        assert name in str(error.value)


def test_image_data_that_inflates_past_a_digit_is_refused_unread(small_splits: Splits) -> None:
    """A decompression bomb: 28x28 in its header, 64 MiB of image data in a small file.

    Refused after inflating at most one byte more than a digit holds, before Pillow (which
    would read its first 28 rows and accept it) is asked.
    """
    image = small_splits["test"][0][0]
    deflate = zlib.compressobj(9)
    parts = [deflate.compress(filtered(image, [0] * SIDE))]
    parts += [deflate.compress(bytes(1 << 20)) for _ in range(64)]
    bomb = handmade_png(b"", idat=b"".join(parts) + deflate.flush())
    assert len(bomb) < 200_000
    with pytest.raises(PipelineError, match=f"inflates past the {IMAGE_BYTES} bytes"):
        check_digit(bomb, "bomb.png")
