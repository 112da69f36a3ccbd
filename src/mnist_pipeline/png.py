"""Encode and decode the 28x28 grayscale PNG digits the pipeline stores."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_pipeline.errors import PipelineError

SIDE = 28
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(image: np.ndarray) -> bytes:
    """Encode one uint8 HxW image as a grayscale PNG (same bytes for the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def decode_digit(data: bytes, name: str) -> np.ndarray:
    """Decode a PNG that must be 28x28 mode L; the error names ``name`` and what is wrong."""
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
