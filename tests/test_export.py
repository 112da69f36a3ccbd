"""The export stage: ONNX files that read raw pixels, checked against PyTorch, and refused
when they are not what they claim to be."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import REPO_ROOT, fast_params, run
from mnist_pipeline.__main__ import main
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import STD
from mnist_pipeline.core.params import NetParams, parse_params
from mnist_pipeline.formats.onnxfile import DESKEW_KEY, MODEL_KEY, open_model
from mnist_pipeline.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mnist_pipeline.model.dataset import DigitFolder, read_splits
from mnist_pipeline.model.export import (
    PORTABLE_OPS,
    TOLERANCE,
    RawPixels,
    compare_logits,
    export_onnx,
    run_export,
)
from mnist_pipeline.model.inference import evaluate_checkpoint
from mnist_pipeline.model.train import train_model
from mnist_pipeline.model.transforms import BatchTransform
from mnist_pipeline.tools.predict import load_digit, predict, predict_onnx


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, small_images: Path) -> dict[str, Path]:
    """models/<model>.pt trained briefly on the small slice: LeNet-5 deskews, the MLP not."""
    models = parse_params(fast_params()).models
    splits = read_splits(small_images)
    folder = tmp_path_factory.mktemp("work") / "models"
    paths = {}
    for name, deskew in [("lenet5", True), ("mlp", False)]:
        net = NetParams(deskew=deskew)
        params = models[name].model_copy(update={"epochs": 3, "net": net})
        trained, _ = train_model(name, params, splits)
        paths[name] = folder / f"{name}.pt"
        save_checkpoint(paths[name], name, trained.model, params, trained.provenance)
    return paths


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path], small_images: Path
) -> dict[str, tuple[Path, dict]]:
    """What the export stage writes for each model: its ONNX file and its metrics."""
    out = tmp_path_factory.mktemp("exported")
    results = {}
    for name, checkpoint in checkpoints.items():
        onnx_path, metrics_path = out / f"{name}.onnx", out / f"{name}-onnx.json"
        returned = run_export(checkpoint, name, small_images, onnx_path, metrics_path)
        assert json.loads(metrics_path.read_text()) == returned
        results[name] = (onnx_path, returned)
    return results


def pipeline_logits(checkpoint: Path, images: torch.Tensor) -> np.ndarray:
    """What the pipeline's own PyTorch path gives for uint8 ``images``."""
    return evaluate_checkpoint(load_checkpoint(checkpoint), images).logits.numpy()


@pytest.mark.parametrize("name", ["lenet5", "mlp"])
def test_the_stage_writes_a_verified_file_and_its_metrics(
    name: str, exported: dict[str, tuple[Path, dict]], small_images: Path
) -> None:
    path, metrics = exported[name]
    assert metrics["test_images"] == 500
    assert metrics["size_bytes"] == path.stat().st_size > 200_000  # the weights are inside
    assert metrics["opset"] >= 16
    assert metrics["onnx_accuracy"] == metrics["pytorch_accuracy"] > 0.3  # no class differs
    assert 0 <= metrics["max_logit_difference"] <= metrics["tolerance"] == TOLERANCE
    assert metrics["disagreements"] == 0
    # onnxruntime alone, on the raw test pixels, scores what the metrics say
    test_set = DigitFolder.read(small_images / "test")
    logits = open_model(path, name).logits(test_set.images.numpy())
    accuracy = (logits.argmax(axis=1) == test_set.labels.numpy()).mean()
    assert round(float(accuracy), 6) == metrics["onnx_accuracy"]
    assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left


def test_deskewing_is_in_the_graph_only_when_the_checkpoint_asks(
    exported: dict[str, tuple[Path, dict]],
) -> None:
    for name, deskew in [("lenet5", True), ("mlp", False)]:
        model = onnx.load(exported[name][0])
        ops = {node.op_type for node in model.graph.node}
        assert ("MatMul" in ops) == deskew, name  # the networks' layers are Gemm and Conv
        assert ops <= PORTABLE_OPS, name
        metadata = {prop.key: prop.value for prop in model.metadata_props}
        assert metadata[MODEL_KEY] == name
        assert metadata[DESKEW_KEY] == ("true" if deskew else "false")
        assert model.producer_name == "mnist-pipeline"
        assert not model.graph.initializer[0].HasField("data_location")  # weights inside


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_any_batch_size_gives_the_pipelines_logits(
    batch: int, checkpoints: dict[str, Path], exported: dict[str, tuple[Path, dict]]
) -> None:
    """Raw uint8 pixels in, logits out, for digits and for pixels MNIST never has."""
    generator = torch.Generator().manual_seed(batch)
    noise = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8, generator=generator)
    noise[0] = 0  # a blank image: the deskew falls back to the identity
    for name in ("lenet5", "mlp"):
        expected = pipeline_logits(checkpoints[name], noise)
        logits = open_model(exported[name][0], name).logits(noise.numpy())
        assert logits.shape == (batch, 10) and logits.dtype == np.float32
        assert np.abs(logits - expected).max() <= TOLERANCE
        assert (logits.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_the_graphs_deskew_is_the_pipelines_to_a_fraction_of_a_gray_level(
    small_images: Path,
) -> None:
    """The resampling as matrix products, against BatchTransform's grid_sample, on the
    normalised pixels the network reads: real digits, noise, blank, one line, one dot."""
    digits = DigitFolder.read(small_images / "test").images
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=generator)
    odd = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    odd[1, 0, 14, 3:25] = 255  # one row of ink: no vertical spread, so no slant
    odd[2, 0, 5, 20] = 200  # one pixel far off centre
    odd[3, 0, 0, :] = odd[3, 0, :, 27] = 255  # ink along two edges: resampled from outside
    images = torch.cat([digits, noise, odd])
    graph = RawPixels(nn.Identity(), deskew=True)
    difference = (graph(images) - BatchTransform(deskew=True)(images)).abs().max().item()
    assert difference * STD * 255 < 0.002  # in gray levels: float32 rounding, another order
    plain = RawPixels(nn.Identity(), deskew=False)
    assert torch.equal(plain(images), BatchTransform()(images))


def test_exporting_twice_gives_the_same_bytes(checkpoints: dict[str, Path]) -> None:
    loaded = load_checkpoint(checkpoints["lenet5"])
    first, second = export_onnx(loaded, "ab" * 32), export_onnx(loaded, "ab" * 32)
    assert first == second
    # nothing about where or how it was run: no source paths, no stack traces
    for leak in (b"stack_trace", b".py", str(Path.cwd()).encode(), b"pkg.torch"):
        assert leak not in first, leak


def test_a_checkpoint_of_unknown_format_is_an_error_naming_model_and_step(
    tmp_path: Path, small_images: Path
) -> None:
    checkpoint = tmp_path / "lenet5.pt"
    torch.save({"format_version": 99, "state_dict": {}}, checkpoint)
    onnx_path = tmp_path / "lenet5.onnx"
    with pytest.raises(PipelineError, match="model 'lenet5': step 'load checkpoint'.*format"):
        run_export(checkpoint, "lenet5", small_images, onnx_path, tmp_path / "m.json")
    assert not onnx_path.exists()


@torch.library.custom_op("mnist_pipeline_test::halve", mutates_args=())
def halve(x: torch.Tensor) -> torch.Tensor:
    """An operator with no ONNX translation."""
    return x / 2


@halve.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return halve(x).flatten(1)[:, :10]


class Resampled(nn.Module):
    """A network that would run in onnxruntime, but not in every runtime the export targets."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "GridSample":
            grid = torch.zeros(x.shape[0], 28, 28, 2)
            x = nn.functional.grid_sample(x, grid, align_corners=False)
        else:
            x = x.double().float()
        return self.linear(x.reshape(-1, 28 * 28))


@pytest.mark.parametrize(
    ("op", "problem"), [("GridSample", "operator GridSample"), ("double", "float64 tensors")]
)
def test_a_graph_that_is_not_portable_is_refused_naming_what(op: str, problem: str) -> None:
    with pytest.raises(PipelineError) as caught:
        export_onnx(Checkpoint("custom", Resampled(op), NetParams(deskew=False), {}))
    message = str(caught.value)
    assert message.startswith("model 'custom': step 'portability check' failed: the graph holds ")
    assert problem in message and "OpenCV DNN" in message


def test_a_model_that_does_not_export_is_an_error_naming_model_and_step() -> None:
    with pytest.raises(PipelineError) as caught:
        export_onnx(Checkpoint("custom", Unexportable(), NetParams(), {}))
    message = str(caught.value)
    assert message.startswith("model 'custom': step 'torch.onnx.export' failed: ")
    assert "\x1b" not in message and "\n" not in message


def test_onnx_that_disagrees_with_pytorch_is_refused_with_the_count(
    checkpoints: dict[str, Path], exported: dict[str, tuple[Path, dict]], small_images: Path
) -> None:
    """The LeNet-5 file checked against the MLP's logits: a real disagreement."""
    images = DigitFolder.read(small_images / "test").images
    onnx_logits = open_model(exported["lenet5"][0]).logits(images.numpy())
    other = pipeline_logits(checkpoints["mlp"], images)
    differ = int((onnx_logits.argmax(axis=1) != other.argmax(axis=1)).sum())
    assert differ > 0
    with pytest.raises(PipelineError, match=f"step 'verify with onnxruntime'.*: {differ} of 500"):
        compare_logits("lenet5", onnx_logits, other)
    # the same classes with logits further apart than the tolerance fail too
    with pytest.raises(PipelineError, match="0 of 500 test digits.*difference 0.01"):
        compare_logits("lenet5", onnx_logits, onnx_logits + 0.01)
    assert compare_logits("lenet5", onnx_logits, onnx_logits) == (0, 0.0)


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.9999])
def test_a_truncated_file_is_refused(
    keep: float, exported: dict[str, tuple[Path, dict]], tmp_path: Path
) -> None:
    data = exported["lenet5"][0].read_bytes()
    cut = tmp_path / "lenet5.onnx"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PipelineError, match=re.escape(str(cut))):
        open_model(cut)


def rewrite(source: Path, target: Path, change) -> Path:
    model = onnx.load(source)
    change(model)
    onnx.save(model, target)
    return target


def test_a_file_that_is_not_the_model_it_claims_is_refused(
    exported: dict[str, tuple[Path, dict]], tmp_path: Path
) -> None:
    lenet5 = exported["lenet5"][0]
    with pytest.raises(PipelineError, match="holds model 'lenet5', expected 'mlp'"):
        open_model(lenet5, expected="mlp")

    def float_input(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT

    def fixed_batch(model: onnx.ModelProto) -> None:
        model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1

    def five_classes(model: onnx.ModelProto) -> None:
        model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5

    def no_metadata(model: onnx.ModelProto) -> None:
        del model.metadata_props[:]

    for change, message in [
        (
            float_input,
            "must have one input 'pixels' uint8 \\[N, 1, 28, 28\\], has 'pixels' float32",
        ),
        (fixed_batch, "has 'pixels' uint8 \\[1, 1, 28, 28\\]"),
        (five_classes, "one output 'logits' float32 \\[N, 10\\], has 'logits' float32 \\[N, 5\\]"),
        (no_metadata, "no 'mnist_pipeline.model' in its metadata"),
    ]:
        path = rewrite(lenet5, tmp_path / f"{change.__name__}.onnx", change)
        with pytest.raises(PipelineError, match=message):
            open_model(path)
    not_onnx = tmp_path / "digit.onnx"
    not_onnx.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(PipelineError, match="not a readable ONNX file"):
        open_model(not_onnx)


# predict --onnx, and the numpy + Pillow + onnxruntime example

EXAMPLE = REPO_ROOT / "examples" / "classify_onnx.py"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, small_images: Path) -> list[Path]:
    """30 test digits as a user might photograph them: larger, off-centre, dark on light."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, image in enumerate(DigitFolder.read(small_images / "test").images[:30, 0].numpy()):
        big = Image.fromarray(255 - image).resize((70, 70), Image.Resampling.BILINEAR)
        canvas = Image.new("L", (100, 90), 255)
        canvas.paste(big, (5 + index % 20, 15))
        paths.append(folder / f"{index}.png")
        canvas.convert("RGB").save(paths[-1])
    return paths


def run_without(modules: tuple[str, ...], code: str, args: list[str], cwd: Path) -> str:
    """The output of ``code`` run by a fresh Python in which importing ``modules`` fails."""
    block = f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None\n"
    return run([sys.executable, "-c", block + code, *args], cwd).stdout


def test_predict_with_onnx_gives_the_checkpoints_answers(
    photos: list[Path], checkpoints: dict[str, Path], exported: dict[str, tuple[Path, dict]]
) -> None:
    for name in ("lenet5", "mlp"):
        with_torch = predict(photos, checkpoints[name], model_name=name)
        with_onnx = predict_onnx(photos, exported[name][0], model_name=name)
        assert [p.digit for p in with_onnx] == [p.digit for p in with_torch]
        for a, b in zip(with_onnx, with_torch, strict=True):
            assert a.path == b.path and abs(a.probability - b.probability) < 1e-4


def test_predict_onnx_runs_without_torch(
    photos: list[Path], exported: dict[str, tuple[Path, dict]], tmp_path: Path
) -> None:
    onnx_path = exported["lenet5"][0]
    code = "from mnist_pipeline.__main__ import main\nsys.exit(main(sys.argv[1:]))\n"
    args = ["predict", "--onnx", str(onnx_path), *map(str, photos[:5])]
    lines = run_without(("torch",), code, args, tmp_path).splitlines()
    expected = predict_onnx(photos[:5], onnx_path)
    assert [line.split(": ")[1].split(" ")[0] for line in lines] == [str(p.digit) for p in expected]
    assert lines[0].startswith(f"{photos[0]}: ")


def test_predict_refuses_a_bad_onnx_file_with_a_clear_message(
    photos: list[Path],
    exported: dict[str, tuple[Path, dict]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lenet5 = exported["lenet5"][0]
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(lenet5.read_bytes()[:-100])
    cases = [
        (["--onnx", str(cut)], f"{cut}: "),
        (["--onnx", str(lenet5), "--model", "mlp"], "holds model 'lenet5', expected 'mlp'"),
        (["--onnx", str(tmp_path / "none.onnx")], "no such ONNX file"),
    ]
    for options, message in cases:
        caplog.clear()
        assert main(["predict", *options, str(photos[0])]) == 1
        assert message in caplog.text
        assert capsys.readouterr().out == ""  # no prediction printed from a refused file


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("classify_onnx", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_brings_images_to_mnist_form_as_predict_does(photos: list[Path]) -> None:
    example = load_example()
    for path in photos:
        ours, theirs = example.mnist_form(str(path)), load_digit(path)
        assert ours.dtype == np.uint8 and ours.shape == (28, 28)
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, path


def test_the_example_classifies_like_predict(
    photos: list[Path], exported: dict[str, tuple[Path, dict]], tmp_path: Path
) -> None:
    """Run as a user would, with only numpy, Pillow and onnxruntime imported."""
    onnx_path = exported["lenet5"][0]
    code = (
        "import runpy\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    args = [str(EXAMPLE), str(onnx_path), *map(str, photos)]
    output = run_without(("torch", "mnist_pipeline"), code, args, tmp_path)
    expected = [f"{p.path}: {p.digit}" for p in predict_onnx(photos, onnx_path)]
    assert output.splitlines() == expected


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    code = EXAMPLE.read_text().split('"""\n', 2)[2].strip()  # after the module docstring
    assert code in readme
    logic = [
        line
        for line in code.splitlines()
        if line.strip()
        and not line.lstrip().startswith(("import", "from", "def", "if", '"""', "#"))
    ]
    assert len(logic) <= 15


def test_the_benchmark_times_both_runtimes(
    checkpoints: dict[str, Path],
    exported: dict[str, tuple[Path, dict]],
    small_images: Path,
    tmp_path: Path,
) -> None:
    """No timing asserted: only that both runtimes ran over every test digit of each model."""
    for name in ("lenet5", "mlp"):
        shutil.copy(checkpoints[name], tmp_path / f"{name}.pt")
        shutil.copy(exported[name][0], tmp_path / f"{name}.onnx")
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        bench_onnx = importlib.import_module("bench_onnx")
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    rows = bench_onnx.run(small_images, tmp_path, repeats=1)
    assert [(row["model"], row["digits"]) for row in rows] == [("lenet5", 500), ("mlp", 500)]
    for row in rows:
        assert all(row[key] > 0 for key in row if key.endswith("_s"))
