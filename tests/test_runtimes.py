"""The exported files in every runtime: onnxruntime here, OpenVINO and OpenCV's DNN module in
the separate environment `make runtimes` builds, each against the pipeline's PyTorch.

The files are the export stage's own, of checkpoints trained briefly on the small slice
(test_export's fixtures); `make verify-runtimes` runs the same checks on the real models.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from PIL import Image

from helpers import REPO_ROOT, run
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.formats.onnxfile import open_model
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.export import TOLERANCE
from test_export import checkpoints, exported, pipeline_logits  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow  # needs `make runtimes`, which `make test` runs
RUNTIMES = ("onnxruntime", "openvino", "opencv")


def load_verify() -> ModuleType:
    """runtimes/verify.py, imported once (its dataclass needs it in sys.modules)."""
    if (module := sys.modules.get("runtimes_verify")) is None:
        path = REPO_ROOT / "runtimes" / "verify.py"
        spec = importlib.util.spec_from_file_location("runtimes_verify", path)
        module = sys.modules["runtimes_verify"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def verify() -> ModuleType:
    """runtimes/verify.py; skips (fails in CI) where OpenVINO and OpenCV are not installed."""
    module = load_verify()
    if not module.RUNTIMES_INSTALLED.exists():
        howto = f"no {module.RUNTIMES_INSTALLED}: `make runtimes` installs OpenVINO and OpenCV"
        if os.environ.get("CI"):
            pytest.fail(f"the runtimes are needed in CI: {howto}")
        pytest.skip(howto)
    return module


def test_every_runtime_gives_pytorchs_class_for_every_test_digit(
    verify: ModuleType,
    checkpoints: dict[str, Path],  # noqa: F811
    exported: dict[str, tuple[Path, dict]],  # noqa: F811
    small_images: Path,
) -> None:
    test = DigitFolder.read(small_images / "test")
    pixels, labels = test.images.numpy(), test.labels.numpy()
    paths = [exported[name][0] for name in ("lenet5", "mlp")]
    logits, versions = verify.every_runtime(paths, pixels)
    assert list(logits) == list(versions) == [*RUNTIMES, "openvino-default"]
    assert versions["opencv"].startswith("5.") and versions["openvino"].startswith("2026.")
    assert versions["openvino-default"].endswith(" by default")  # shown, not checked
    for name, path in zip(("lenet5", "mlp"), paths, strict=True):
        reference = pipeline_logits(checkpoints[name], test.images)
        accuracy = exported[name][1]["pytorch_accuracy"]
        for runtime in RUNTIMES:
            row = verify.compare(name, runtime, logits[runtime][path], reference, labels)
            assert row.failures(accuracy) == [], row
            assert row.disagreements == 0 and row.max_difference <= TOLERANCE
            assert round(row.accuracy, 6) == accuracy


def test_every_runtime_reads_any_batch_noise_and_a_blank_image(
    verify: ModuleType,
    checkpoints: dict[str, Path],  # noqa: F811
    exported: dict[str, tuple[Path, dict]],  # noqa: F811
) -> None:
    """Pixels MNIST never has; one digit alone; the blank image, whose deskew is the identity."""
    generator = torch.Generator().manual_seed(7)
    noise = torch.randint(0, 256, (13, 1, 28, 28), dtype=torch.uint8, generator=generator)
    noise[0] = 0
    for batch in (noise, noise[:1], noise[1:2]):
        paths = [exported[name][0] for name in ("lenet5", "mlp")]
        logits, _ = verify.every_runtime(paths, batch.numpy())
        for name, path in zip(("lenet5", "mlp"), paths, strict=True):
            reference = pipeline_logits(checkpoints[name], batch)
            for runtime in RUNTIMES:
                assert logits[runtime][path].shape == (len(batch), 10), runtime
                assert np.abs(logits[runtime][path] - reference).max() <= TOLERANCE, runtime


def test_a_runtime_that_cannot_run_a_file_is_named_with_it(
    verify: ModuleType, tmp_path: Path
) -> None:
    """What the earlier export held, and OpenCV 5.1 failed on: a float64 MatMul by a vector.

    onnxruntime and OpenVINO run this graph; OpenCV's failure names itself and the file.
    """
    pixels = helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["N", 1, 28, 28])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    weights = np.ones((28, 10), np.float64) / 28
    nodes = [
        helper.make_node("Cast", ["pixels"], ["wide"], to=TensorProto.DOUBLE),
        helper.make_node("ReduceSum", ["wide", "axes"], ["rows"], keepdims=0),
        helper.make_node("Reshape", ["rows", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "column"], ["sums"]),  # N x 28 by a vector of 28
        helper.make_node("Unsqueeze", ["sums", "last"], ["sums2"]),
        helper.make_node("MatMul", ["sums2", "spread"], ["wide_logits"]),
        helper.make_node("Cast", ["wide_logits"], ["logits"], to=TensorProto.FLOAT),
    ]
    initializers = [
        helper.make_tensor("axes", TensorProto.INT64, [2], [1, 3]),
        helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 28]),
        helper.make_tensor("column", TensorProto.DOUBLE, [28], np.ones(28).tolist()),
        helper.make_tensor("last", TensorProto.INT64, [1], [1]),
        helper.make_tensor("spread", TensorProto.DOUBLE, [1, 10], weights.sum(0).tolist()),
    ]
    graph = helper.make_graph(nodes, "float64", [pixels], [logits], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "wide.onnx"
    onnx.save(model, path)
    ones = np.ones((2, 1, 28, 28), np.uint8)
    with pytest.raises(PipelineError, match=rf"score.py: opencv: {path}: error: .*idx < "):
        verify.score_elsewhere([path], ones)


def test_without_the_environment_the_check_says_how_to_build_it(tmp_path: Path) -> None:
    verify = load_verify()
    missing = tmp_path / "bin" / "python"
    with pytest.raises(PipelineError, match="no environment for OpenVINO and OpenCV: `make r"):
        verify.score_elsewhere([tmp_path / "m.onnx"], np.zeros((1, 1, 28, 28), np.uint8), missing)


def test_a_runtime_off_the_metrics_accuracy_fails_the_check() -> None:
    verify = load_verify()
    reference = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    labels = np.array([0, 1, 2, 3])
    row = verify.compare("mlp", "opencv", reference, reference, labels)
    assert row.failures(1.0) == []
    assert row.failures(0.75) == ["model 'mlp' in opencv: accuracy 100.00 %, metrics say 75.00 %"]
    swapped = reference[[1, 0, 2, 3]]
    row = verify.compare("mlp", "opencv", swapped, reference, labels)
    assert row.disagreements == 2 and row.accuracy == 0.5
    assert "2 digits get another class than in PyTorch" in row.failures(1.0)[0]
    assert "logits differ from PyTorch's by up to 1" in row.failures(1.0)[1]


def test_the_opencv_example_classifies_like_onnxruntime(
    verify: ModuleType,
    exported: dict[str, tuple[Path, dict]],  # noqa: F811
    small_images: Path,
    tmp_path: Path,
) -> None:
    """examples/classify_opencv.py run by the runtimes' Python, on the extracted test PNGs."""
    pngs = sorted((small_images / "test").glob("*/*.png"))[::25]
    onnx_path = exported["lenet5"][0]
    example = REPO_ROOT / "examples" / "classify_opencv.py"
    args = [str(verify.RUNTIMES_PYTHON), str(example), str(onnx_path), *map(str, pngs)]
    output = run(args, tmp_path).stdout
    pixels = np.stack([np.asarray(Image.open(path)) for path in pngs])
    digits = open_model(onnx_path).logits(pixels).argmax(axis=1)
    assert output.splitlines() == [f"{p}: {d}" for p, d in zip(pngs, digits, strict=True)]
    bad = tmp_path / "wide.png"
    Image.new("L", (30, 28)).save(bad)
    refused = subprocess.run(args[:3] + [str(bad)], capture_output=True, text=True, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"{bad}: not a 28x28 image OpenCV can read"
