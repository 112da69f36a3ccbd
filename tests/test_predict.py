"""`python -m mnist_pipeline predict`: real digits in other sizes, modes and colours."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import fast_params
from mnist_pipeline.__main__ import main
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import parse_params
from mnist_pipeline.data.sources import Splits
from mnist_pipeline.model.checkpoint import load_checkpoint, save_checkpoint
from mnist_pipeline.model.dataset import read_splits
from mnist_pipeline.model.inference import evaluate_checkpoint
from mnist_pipeline.model.train import train_model
from mnist_pipeline.tools.predict import load_digit, predict, to_mnist

DIGITS = 40  # test digits sent through predict


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


def dark_on_light(digit: np.ndarray, size: int = 100) -> np.ndarray:
    """``digit`` scaled up, placed off-centre in a ``size``-pixel RGB square, dark on light."""
    big = Image.fromarray(digit).resize((size * 7 // 10,) * 2, Image.Resampling.BILINEAR)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(big, (size // 20, size // 5))
    ink = np.asarray(canvas).astype(np.float64) / 255
    paper, pen = np.array([245, 240, 225]), np.array([20, 30, 90])  # cream paper, blue ink
    return np.rint(paper + ink[..., None] * (pen - paper)).astype(np.uint8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, small_images: Path) -> Path:
    """models/mlp.pt of a small MLP trained on the 1,000-digit slice (about 88% accurate)."""
    params = parse_params(fast_params()).models["mlp"].model_copy(update={"epochs": 5})
    trained, _ = train_model("mlp", params, read_splits(small_images))
    path = tmp_path_factory.mktemp("work") / "models" / "mlp.pt"
    save_checkpoint(path, "mlp", trained.model, params, trained.provenance)
    return path


def test_an_mnist_digit_keeps_its_form(small_splits: Splits) -> None:
    images, _ = small_splits["test"]
    kept = [correlation(to_mnist(image.astype(float), "digit"), image) for image in images[:100]]
    assert np.median(kept) > 0.99  # MNIST is already cropped, scaled to 20 and mass-centred


def test_a_dark_digit_on_a_large_colour_image_is_brought_to_mnist_form(
    tmp_path: Path, small_splits: Splits
) -> None:
    images, _ = small_splits["test"]
    scores = []
    for index, image in enumerate(images[:50]):
        path = tmp_path / f"{index}.png"
        Image.fromarray(dark_on_light(image), "RGB").save(path)
        digit = load_digit(path)
        assert digit.shape == (28, 28) and digit.dtype == np.uint8
        assert np.median(digit) == 0 and digit.max() > 200  # light ink on black: inverted
        scores.append(correlation(digit, image))
    assert np.median(scores) > 0.9


def test_predict_prints_each_images_digit_and_probability(
    tmp_path: Path,
    small_splits: Splits,
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    images, labels = small_splits["test"]
    images, labels = images[:DIGITS], labels[:DIGITS]
    paths = []
    for index, image in enumerate(images):
        rgb = dark_on_light(image)
        kind = index % 4  # the same digits as RGB PNG, JPEG, RGBA with transparency, 16-bit
        if kind == 0:
            path = tmp_path / f"{index}.png"
            Image.fromarray(rgb, "RGB").save(path)
        elif kind == 1:
            path = tmp_path / f"{index}.jpg"
            Image.fromarray(rgb, "RGB").save(path, quality=90)
        elif kind == 2:  # dark ink on a transparent background, as drawing apps save it
            path = tmp_path / f"{index}.png"
            alpha = 255 - np.asarray(Image.fromarray(rgb).convert("L"))
            rgba = np.dstack([np.zeros_like(rgb), alpha.clip(0, 255)]).astype(np.uint8)
            Image.fromarray(rgba, "RGBA").save(path)
        else:
            path = tmp_path / f"{index}.tif"
            gray = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
            Image.fromarray(gray).save(path)  # 16-bit grayscale
        paths.append(path)

    monkeypatch.chdir(checkpoint.parent.parent)  # the default checkpoint: models/mlp.pt
    assert main(["predict", "--model", "mlp", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()

    assert [line.split(": ")[0] for line in lines] == [str(path) for path in paths]
    digits = [int(line.split(": ")[1].split()[0]) for line in lines]
    probabilities = [float(line.rsplit("(", 1)[1].rstrip("%)")) / 100 for line in lines]
    assert all(0.1 <= p <= 1 for p in probabilities)
    # the model on the original 28x28 digits, for comparison
    digits_28 = torch.from_numpy(images.copy()).unsqueeze(1)
    original = evaluate_checkpoint(load_checkpoint(checkpoint), digits_28).predictions
    agreement = np.mean(np.array(digits) == original.numpy())
    accuracy = np.mean(np.array(digits) == labels)
    assert agreement >= 0.85, (agreement, digits, original.tolist())
    assert accuracy >= 0.7, (accuracy, digits, labels.tolist())


def test_an_unreadable_file_is_named_in_the_error(
    tmp_path: Path, checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(dark_on_light(np.eye(28, dtype=np.uint8) * 255)).save(good)
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (50, 40), "white").save(blank)
    cases = {
        not_image: "not an image",
        tmp_path / "missing.png": "no such file",
        tmp_path: "is a directory",
        truncated: "cannot read image",
        blank: "no digit found",
    }
    for path, message in cases.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            code = main(["predict", "--checkpoint", str(checkpoint), str(good), str(path)])
        assert code == 1
        assert f"{path}: {message}" in caplog.text


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    image = tmp_path / "one.png"
    Image.fromarray(np.pad(np.full((20, 4), 255, np.uint8), 4)).save(image)
    with pytest.raises(PipelineError, match="holds model 'mlp', expected 'lenet5'"):
        predict([image], checkpoint, model_name="lenet5")


def test_python_m_entry_point_reports_a_missing_checkpoint(tmp_path: Path) -> None:
    image = tmp_path / "one.png"
    Image.fromarray(np.pad(np.full((20, 4), 255, np.uint8), 4)).save(image)
    result = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "predict", str(image), "--model", "mlp"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "models/mlp.pt: checkpoint missing" in result.stderr
