"""The draw-a-digit page, built from freshly exported files and driven in the system's headless
Chromium (playwright-core, no browser download) with no network beyond the page's own server.

Strokes drawn from one real test digit of each class are replayed on the pad; the page's
28x28 form must be what the pipeline's Python makes of the same drawing (its PNG), and the
page's probabilities what the pipeline's PyTorch gives for that form.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from helpers import REPO_ROOT
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.model.checkpoint import load_checkpoint
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.nets import count_parameters
from mnist_pipeline.tools.predict import load_digit, to_mnist
from test_export import checkpoints, exported, pipeline_logits  # noqa: F401 (fixtures)

sys.path.insert(0, str(REPO_ROOT / "web"))
from build_page import MAX_BYTES, build_page  # noqa: E402
from page_driver import PageDriver, find_chromium, png_bytes, scanline_strokes  # noqa: E402

pytestmark = pytest.mark.slow  # a browser and node_modules: `make test` prepares both
NODE_MODULES = REPO_ROOT / "node_modules"
MODELS = ("lenet5", "mlp")
# the page's form against Python's of the pad's PNG: the PNG lays the ink over white and
# Python takes it back off, which can round a pixel's ink one level differently
FORM_TOLERANCE = 1  # gray levels
PROBABILITY_TOLERANCE = 1e-4  # onnxruntime-web against PyTorch, on the same 28x28 pixels


def needs(what: str, howto: str) -> None:
    """Skip for want of ``what``, saying how to get it; in CI, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed in CI: {howto}")
    pytest.skip(f"no {what}: {howto}")


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    checkpoints: dict[str, Path],  # noqa: F811
    exported: dict[str, tuple[Path, dict]],  # noqa: F811
) -> Path:
    """The page as `make web` builds it, of the files the export stage wrote."""
    if not (NODE_MODULES / "playwright-core").is_dir():
        needs("node_modules", "`make node-tools` (npm ci) installs onnxruntime-web, playwright")
    folder = tmp_path_factory.mktemp("web")
    models = {}
    for name in MODELS:
        metrics = folder / f"{name}.json"  # what the evaluate stage writes, in short
        accuracy = exported[name][1]["pytorch_accuracy"]
        parameters = count_parameters(load_checkpoint(checkpoints[name]).model)
        metrics.write_text(
            json.dumps({"accuracy": accuracy, "test_images": 500, "parameters": parameters})
        )
        models[name] = (exported[name][0], metrics)
    build_page(folder / "site", models, NODE_MODULES)
    return folder / "site"


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        needs("headless Chromium", "`make chromium` installs it, where apt-get runs as root")
    return path


@pytest.fixture(scope="module")
def page(site: Path, chromium: str):
    with PageDriver(site, chromium) as driver:
        yield driver


@pytest.fixture(scope="module")
def digits(small_images: Path) -> dict[int, np.ndarray]:
    """The first test digit of each class, 28 x 28 uint8."""
    test = DigitFolder.read(small_images / "test")
    labels = test.labels.numpy()
    return {
        label: test.images[np.flatnonzero(labels == label)[0], 0].numpy() for label in range(10)
    }


def test_the_page_loads_with_no_network_and_waits_for_a_digit(page: PageDriver) -> None:
    assert page.ready["ready"] is True
    assert page.ready["blocked"] == []  # it asked for nothing outside its own server
    assert page.ready["problems"] == []
    state = page.ask("state")
    assert state["status"] == "draw a digit"
    assert state["form"] is None
    for name in MODELS:
        assert state["models"][name] == {"error": None, "probabilities": None}  # no guess


def test_each_drawn_digit_gets_the_pipelines_form_and_prediction(
    page: PageDriver,
    digits: dict[int, np.ndarray],
    checkpoints: dict[str, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    forms, drawings, probabilities = [], [], {name: [] for name in MODELS}
    for label, digit in digits.items():
        page.ask("clear")
        state = page.ask("draw", strokes=scanline_strokes(digit, scale=10, origin=(0, 0)))
        assert "error" not in state and state["problems"] == [], state
        forms.append(np.array(state["form"], dtype=np.uint8).reshape(28, 28))
        drawings.append(tmp_path / f"drawn-{label}.png")
        drawings[-1].write_bytes(png_bytes(state["png"]))
        for name in MODELS:
            probabilities[name].append(state["models"][name]["probabilities"])
        guesses = [f"{name}: {int(np.argmax(probabilities[name][-1]))} (" for name in MODELS]
        assert state["status"].startswith(guesses[0]) and guesses[1] in state["status"]
    # the page's preprocessing: Python's, of the same drawing
    for form, drawing in zip(forms, drawings, strict=True):
        python = load_digit(drawing)
        assert np.abs(form.astype(int) - python.astype(int)).max() <= FORM_TOLERANCE, drawing
        assert (form > 0).sum() > 30  # a digit, not a dot
    # the page's predictions: the pipeline's, of the same 28x28 pixels
    pixels = torch.from_numpy(np.stack(forms)).unsqueeze(1)
    for name in MODELS:
        expected = pipeline_logits(checkpoints[name], pixels)
        expected = torch.from_numpy(expected).softmax(dim=1).numpy()
        got = np.array(probabilities[name])
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).all(), name
        assert np.abs(got - expected).max() <= PROBABILITY_TOLERANCE, name


def test_clear_brings_back_draw_a_digit(page: PageDriver, digits: dict[int, np.ndarray]) -> None:
    drawn = page.ask("draw", strokes=scanline_strokes(digits[3], scale=10, origin=(0, 0)))
    assert drawn["form"] is not None
    cleared = page.ask("clear")
    assert cleared["status"] == "draw a digit" and cleared["form"] is None
    assert all(cleared["models"][name]["probabilities"] is None for name in MODELS)


def test_the_page_keeps_working_with_the_network_cut_off(
    page: PageDriver, digits: dict[int, np.ndarray]
) -> None:
    assert page.ask("offline") == {"offline": True}
    page.ask("clear")
    state = page.ask("draw", strokes=scanline_strokes(digits[7], scale=10, origin=(0, 0)))
    assert all(len(state["models"][name]["probabilities"]) == 10 for name in MODELS)
    assert state["problems"] == []


def test_a_model_that_fails_to_load_is_named_with_the_reason(
    site: Path, chromium: str, digits: dict[int, np.ndarray], tmp_path: Path
) -> None:
    broken = shutil.copytree(site, tmp_path / "site")
    model = broken / "models" / "mlp.onnx"
    model.write_bytes(model.read_bytes()[:5000])  # cut short
    (broken / "models" / "lenet5.onnx").rename(broken / "models" / "moved.onnx")
    with PageDriver(broken, chromium) as driver:
        state = driver.ask("state")
        errors = {name: model["error"] for name, model in state["models"].items()}
    assert errors["mlp"].startswith("mlp: could not load models/mlp.onnx: ")
    assert errors["lenet5"] == "lenet5: could not load models/lenet5.onnx: HTTP 404 File not found"
    assert state["status"] == "no model could be loaded: see why below"
    # one model that loads is enough for the page to work
    (broken / "models" / "moved.onnx").rename(broken / "models" / "lenet5.onnx")
    with PageDriver(broken, chromium) as driver:
        state = driver.ask("draw", strokes=scanline_strokes(digits[1], scale=10, origin=(0, 0)))
    assert state["models"]["lenet5"]["error"] is None
    assert len(state["models"]["lenet5"]["probabilities"]) == 10
    assert state["models"]["mlp"]["probabilities"] is None
    assert state["status"].startswith("lenet5: ") and "mlp" not in state["status"]


def test_the_page_with_both_models_and_the_runtime_fits_its_budget(site: Path) -> None:
    sizes = {path.relative_to(site).as_posix(): path.stat().st_size for path in site.rglob("*")}
    assert {"index.html", "models/lenet5.onnx", "models/mlp.onnx"} <= set(sizes)
    assert sizes["ort/ort-wasm-simd-threaded.wasm"] > 5_000_000  # the runtime is inside
    assert sum(sizes.values()) <= MAX_BYTES == 15_000_000


def test_the_build_refuses_a_model_it_has_no_file_for(
    exported: dict[str, tuple[Path, dict]],  # noqa: F811
    tmp_path: Path,
) -> None:
    metrics = tmp_path / "mlp.json"
    metrics.write_text('{"accuracy": 0.9, "test_images": 500, "parameters": 64630}')
    missing = tmp_path / "mlp.onnx"
    with pytest.raises(PipelineError, match=f"{missing}: no such ONNX file"):
        build_page(tmp_path / "out", {"mlp": (missing, metrics)}, NODE_MODULES)
    with pytest.raises(PipelineError, match="holds model 'lenet5', expected 'mlp'"):
        build_page(tmp_path / "out", {"mlp": (exported["lenet5"][0], metrics)}, NODE_MODULES)
    metrics.write_text("{}")
    with pytest.raises(PipelineError, match="mlp.json: no accuracy, test_images and parameters"):
        build_page(tmp_path / "out", {"mlp": (exported["mlp"][0], metrics)}, NODE_MODULES)
    assert not (tmp_path / "out").exists()


def test_the_pages_preprocessing_is_pythons_to_the_pixel(tmp_path: Path) -> None:
    """web/mnist_form.js run by node against predict.to_mnist: pen strokes of every width,
    ink of every strength, images of every shape, ink at the image's edges too (while most of
    the border is background, which the page knows and Python estimates)."""
    rng = np.random.default_rng(0)
    images = []
    for index in range(60):
        width, height = (int(v) for v in rng.integers(8, 320, 2))
        image = Image.new("L", (width, height), 0)
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(4)]
        pen = int(rng.integers(1, 30))
        ImageDraw.Draw(image).line(points, fill=int(rng.integers(30, 256)), width=pen)
        if index % 10 == 0:
            image.putpixel((0, 0), 255)  # ink in a corner: the crop reaches the edge
        images.append(np.asarray(image, dtype=np.float64))
    # the pad's background is nothing drawn, 0, where to_mnist takes the border's median
    border = [np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]) for a in images]
    images = [a for a, edge in zip(images, border, strict=True) if np.median(edge) == 0]
    cases = tmp_path / "cases.json"
    cases.write_text(
        json.dumps([{"w": a.shape[1], "h": a.shape[0], "ink": a.ravel().tolist()} for a in images])
    )
    script = (
        "import { mnistForm } from './web/mnist_form.js';\n"
        "import { readFileSync } from 'node:fs';\n"
        "const cases = JSON.parse(readFileSync(process.argv[1]));\n"
        "console.log(JSON.stringify(cases.map((c) => "
        "Array.from(mnistForm(Float64Array.from(c.ink), c.w, c.h)))));\n"
    )
    if shutil.which("node") is None:
        needs("node", "install Node.js to run the page's code outside a browser")
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(cases)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    forms = json.loads(done.stdout)
    assert len(forms) == len(images) > 45
    for form, image in zip(forms, images, strict=True):
        assert np.array_equal(np.array(form, np.uint8).reshape(28, 28), to_mnist(image, "case"))
