"""Classify image files with a trained checkpoint.

Any image PIL reads is brought to MNIST's form first: gray, a light digit on a dark
background (a dark digit on a light one is inverted), cropped to the digit, its longest
side scaled to 20 pixels and placed in a 28x28 frame so that its centre of mass lies at
the centre, as the MNIST digits were prepared.

With a checkpoint, torch runs the model; with an exported ONNX file, onnxruntime does,
and torch is not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import SIDE

DIGIT_BOX = 20  # MNIST scales each digit's longest side to 20 pixels
INK_THRESHOLD = 0.2  # share of the brightest ink a pixel needs to count as part of the digit


@dataclass(frozen=True)
class Prediction:
    path: Path
    digit: int
    probability: float


def read_gray(path: Path) -> np.ndarray:
    """``path`` as a float gray image (16-bit and float kept as they are); transparency is
    laid over white."""
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, "white")
                image = Image.alpha_composite(background, rgba)
            if image.mode not in ("L", "I", "I;16", "I;16B", "I;16L", "F"):
                image = image.convert("L")
            return np.asarray(image, dtype=np.float64)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise PipelineError(f"{path}: is a directory, not an image") from exc
    except UnidentifiedImageError as exc:
        raise PipelineError(f"{path}: not an image PIL can read") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PipelineError(f"{path}: cannot read image: {exc}") from exc


def to_mnist(gray: np.ndarray, name: str) -> np.ndarray:
    """A gray image (any size) as a 28x28 uint8 MNIST-style digit: light ink on black."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    light_background = background > (float(gray.min()) + float(gray.max())) / 2
    ink = background - gray if light_background else gray - background
    ink = np.clip(ink, 0, None)
    peak = float(ink.max())
    if peak <= 0:
        raise PipelineError(f"{name}: no digit found: the image is one flat colour")
    ink = ink * (255.0 / peak)
    rows = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    factor = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    digit = np.asarray(
        Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float64,
    ).clip(0, 255)
    total = digit.sum()
    ys, xs = np.indices(digit.shape)
    centre_y = (ys * digit).sum() / total
    centre_x = (xs * digit).sum() / total
    top = int(round(SIDE / 2 - centre_y))
    left = int(round(SIDE / 2 - centre_x))
    frame = np.zeros((SIDE, SIDE), dtype=np.float64)
    # paste, clipping whatever a far-off centre of mass pushes outside the frame
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + digit.shape[0], SIDE), min(left + digit.shape[1], SIDE)
    frame[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return np.rint(frame).astype(np.uint8)


def load_digit(path: Path) -> np.ndarray:
    """Read ``path`` and bring it to MNIST's 28x28 form."""
    return to_mnist(read_gray(path), str(path))


def _best(paths: list[Path], probabilities: np.ndarray) -> list[Prediction]:
    digits = probabilities.argmax(axis=1)
    return [
        Prediction(path, int(d), float(probabilities[i, d]))
        for i, (path, d) in enumerate(zip(paths, digits, strict=True))
    ]


def predict(paths: list[Path], checkpoint: Path, model_name: str | None = None) -> list[Prediction]:
    """The most probable digit, with its probability, for each image in ``paths``."""
    import torch

    from mnist_pipeline.model.inference import evaluate_checkpoint, open_checkpoint

    loaded = open_checkpoint(checkpoint, model_name, torch.device("cpu"))  # before any image
    digits = torch.from_numpy(np.stack([load_digit(path) for path in paths])).unsqueeze(1)
    probabilities = evaluate_checkpoint(loaded, digits).logits.softmax(dim=1).double().numpy()
    return _best(paths, probabilities)


def predict_onnx(
    paths: list[Path], onnx_path: Path, model_name: str | None = None
) -> list[Prediction]:
    """:func:`predict` with an exported ONNX file, run by onnxruntime: torch not needed."""
    from mnist_pipeline.formats.onnxfile import open_model, softmax

    exported = open_model(onnx_path, expected=model_name)  # refuse a bad file before reading
    digits = np.stack([load_digit(path) for path in paths])
    return _best(paths, softmax(exported.logits(digits)))
