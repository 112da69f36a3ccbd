"""Classify digit images with an exported model, using only numpy, Pillow and onnxruntime.

    python examples/classify_onnx.py models/lenet5.onnx digit.png [more.png ...]

Each image is brought to MNIST's form as ``python -m mnist_pipeline predict`` does: light
ink on black, cropped, longest side 20 pixels, centre of mass in the middle of 28x28
(``predict`` also lays transparency over white and applies EXIF rotation). The model
itself deskews and normalises.
"""

import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


def mnist_form(path: str) -> np.ndarray:
    """``path`` as a 28x28 uint8 digit, light on black, as MNIST's digits were prepared."""
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    edge = np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]))
    sign = -1 if edge > (gray.min() + gray.max()) / 2 else 1  # -1: dark ink on light paper
    ink = np.clip(sign * (gray - edge), 0, None)
    rows, cols = np.nonzero(ink > 0.2 * ink.max())
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] * (255 / ink.max())
    size = [max(1, round(side * (20 / max(crop.shape)))) for side in crop.shape[::-1]]
    small = Image.fromarray(np.float32(crop)).resize(size, Image.Resampling.LANCZOS)
    digit = np.asarray(small, dtype=np.float64).clip(0, 255)
    centre = (np.indices(digit.shape) * digit).sum(axis=(1, 2)) / digit.sum()
    top, left = (round(14 - c) for c in centre)  # where the digit's corner goes in 28x28
    return np.rint(np.pad(digit, 20)[20 - top : 48 - top, 20 - left : 48 - left]).astype(np.uint8)


if __name__ == "__main__":
    pixels = np.stack([mnist_form(path) for path in sys.argv[2:]])[:, None]  # N x 1 x 28 x 28
    digits = ort.InferenceSession(sys.argv[1]).run(None, {"pixels": pixels})[0].argmax(axis=1)
    print("\n".join(f"{p}: {d}" for p, d in zip(sys.argv[2:], digits, strict=True)))
