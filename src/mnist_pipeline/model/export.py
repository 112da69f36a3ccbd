"""The export stage: a checkpoint as one self-contained ONNX file that reads raw pixels.

The file holds the model behind the same preprocessing the pipeline applies: uint8
pixels to [0, 1], deskewing when the checkpoint was trained with it, then normalisation.
The graph is portable: the deskew's bilinear resampling is written as matrix products
of interpolation weights instead of ``GridSample``, all in float32, with no shape
computed at run time, so that onnxruntime, OpenVINO and OpenCV's DNN module all run it
(:data:`PORTABLE_OPS` lists the operators it may hold). It is written only after that
check, and after onnxruntime, run on every test digit, gives the same class as PyTorch
for each, with logits within :data:`TOLERANCE`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from mnist_pipeline.core.atomic import atomic_path, write_text
from mnist_pipeline.core.errors import PipelineError, first_line
from mnist_pipeline.core.mnist import MEAN, SIDE, STD
from mnist_pipeline.formats.onnxfile import (
    DESKEW_KEY,
    INPUT_NAME,
    MODEL_KEY,
    OUTPUT_NAME,
    PRODUCER,
    check_interface,
    open_model,
)
from mnist_pipeline.model.checkpoint import Checkpoint, load_checkpoint
from mnist_pipeline.model.dataset import read_splits
from mnist_pipeline.model.inference import BATCH_SIZE, evaluate_checkpoint, ready
from mnist_pipeline.model.runtime import provenance
from mnist_pipeline.model.transforms import pixel_centres, to_unit

log = logging.getLogger(__name__)
# the exporter's passes log every rewrite at INFO: keep the stage's log to its own lines
for _name in ("onnx_ir", "onnxscript"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# torch's dynamo exporter writes opset 18 natively (another opset goes through the ONNX
# version converter); GridSample exists since opset 16 and onnxruntime runs 18 fully.
OPSET = 18
# onnxruntime's and PyTorch's logits may differ in the last bits (other kernels, another
# summation order); metrics/<model>-onnx.json records the largest difference seen.
TOLERANCE = 1e-3


# What every runtime the export targets runs (onnxruntime, OpenVINO, OpenCV DNN 5.1): the
# operators of both models' graphs, nothing computed from shapes at run time.
PORTABLE_OPS = frozenset(
    {"Abs", "Add", "Cast", "Clip", "Conv", "Div", "Gemm", "MatMul", "MaxPool", "Mul"}
    | {"ReduceSum", "Relu", "Reshape", "Sub", "Unsqueeze"}
)
# element types a portable graph's tensors may have: the uint8 pixels, float32 values, and
# int64 for the constant shapes and axes. No float64: OpenCV 5.1 fails on a float64 MatMul
# by a vector (an assertion `idx < dims`), which deskew moments computed in float64 make.
PORTABLE_TYPES = frozenset({onnx.TensorProto.UINT8, onnx.TensorProto.FLOAT, onnx.TensorProto.INT64})
# a floor for the ink's mass and vertical spread, as in transforms.upright_theta
TINY = 1e-12


def tent(distance: torch.Tensor) -> torch.Tensor:
    """Linear interpolation's weight of a pixel ``distance`` pixels away: 1 - |d|, 0 past 1."""
    return torch.relu(1 - distance.abs())


class RawPixels(nn.Module):
    """``model`` behind the pipeline's preprocessing: uint8 N x 1 x 28 x 28 in, logits out.

    Computes what :class:`.BatchTransform` does without augmentation, in operators every
    target runtime has: the deskew of :func:`.upright_theta` (the ink's centroid and slant,
    here from centred float32 moments), then the bilinear resampling ``F.grid_sample``
    does, as two products with tent weights. The map moves each output row by the same
    amount vertically (the centroid's height) and shifts it sideways (centroid and slant),
    so the rows are first interpolated between input rows, then each row along itself.
    Outside the image counts as black, as with ``padding_mode="zeros"``.
    """

    def __init__(self, model: nn.Module, deskew: bool) -> None:
        super().__init__()
        self.model, self.deskew = model, deskew
        index = torch.arange(SIDE, dtype=torch.float32)
        self.register_buffer("centres", pixel_centres(), persistent=False)  # in [-1, 1]
        self.register_buffer("index", index, persistent=False)  # in pixels
        self.register_buffer("offsets", index[:, None] - index, persistent=False)  # w - j

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = to_unit(pixels)
        if self.deskew:
            x = self.upright(x)
        return self.model((x - MEAN) / STD)

    def upright(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N x 1 x 28 x 28 in [0, 1]) sheared upright and centred by its moments."""
        pos = self.centres  # u across a row, v down a column: the same 28 values
        by_row, by_column = x.sum(3), x.sum(2)  # N x 1 x 28 each
        mass = by_row.sum(2, keepdim=True).clamp_min(TINY)
        v0 = (by_row * pos).sum(2, keepdim=True) / mass  # N x 1 x 1
        u0 = (by_column * pos).sum(2, keepdim=True) / mass
        dv, du = pos - v0, pos - u0  # N x 1 x 28: each pixel centre from the centroid
        var_v = (by_row * dv * dv).sum(2, keepdim=True) / mass
        cov = ((x * du[:, :, None]).sum(3) * dv).sum(2, keepdim=True) / mass
        slant = cov / var_v.clamp_min(TINY)
        half = SIDE / 2  # grid units to pixels
        # output row h reads input row h + 28/2 v0: one weight per (h, input row)
        rows = tent((self.index + half * v0)[..., None] - self.index) @ x
        # ... and pixel w of it reads w + 28/2 (slant v_h + u0): N x 28 x 28 x 28 weights
        shift = (half * (slant * pos + u0)).reshape(-1, SIDE, 1, 1)
        out = tent(self.offsets + shift) @ rows.reshape(-1, SIDE, SIDE, 1)
        return out.reshape(-1, 1, SIDE, SIDE)


def _fix_fields(model: onnx.ModelProto, loaded: Checkpoint, checkpoint_sha256: str) -> None:
    """Make the file depend on the model alone: fixed producer, no paths or stack traces."""
    model.producer_name = PRODUCER
    model.producer_version = importlib.metadata.version("mnist-pipeline")
    model.doc_string = ""
    for node in model.graph.node:  # the exporter records source files and line numbers
        del node.metadata_props[:]
        node.doc_string = ""
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        del value.metadata_props[:]
        value.doc_string = ""
    for tensor in model.graph.initializer:
        del tensor.metadata_props[:]
    del model.graph.metadata_props[:]  # the exported program's signature and constraints
    model.graph.doc_string = ""
    del model.metadata_props[:]
    metadata = {
        MODEL_KEY: loaded.name,
        DESKEW_KEY: "true" if loaded.net.deskew else "false",
        "mnist_pipeline.input": (
            f"{INPUT_NAME}: uint8 [N, 1, {SIDE}, {SIDE}], 0-255, a light digit on black"
        ),
        "mnist_pipeline.output": f"{OUTPUT_NAME}: float32 [N, 10], class logits",
        "mnist_pipeline.normalisation": f"(pixel / 255 - {MEAN}) / {STD}, inside the graph",
        "mnist_pipeline.checkpoint_sha256": checkpoint_sha256,
        "mnist_pipeline.exporter": f"torch {torch.__version__} dynamo, opset {OPSET}",
    }
    onnx.helper.set_model_props(model, metadata)  # stored last: a cut file loses it first


def export_onnx(loaded: Checkpoint, checkpoint_sha256: str = "") -> bytes:
    """The ONNX file of ``loaded``'s model behind its preprocessing, serialized.

    Fails naming the model and the step: torch's export, or the ONNX checker.
    """
    wrapper = RawPixels(copy.deepcopy(loaded.model), loaded.net.deskew).eval()
    example = torch.zeros(2, 1, SIDE, SIDE, dtype=torch.uint8)
    try:
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"pixels": {0: torch.export.Dim("N")}},
            external_data=False,
            optimize=True,
            verbose=False,
        )
        model = program.model_proto
    except Exception as exc:  # torch.export and the exporter raise many kinds
        raise PipelineError(
            f"model '{loaded.name}': step 'torch.onnx.export' failed: {first_line(exc)}"
        ) from exc
    _fix_fields(model, loaded, checkpoint_sha256)
    try:
        onnx.checker.check_model(model, full_check=True)
        check_interface(model, f"model '{loaded.name}'", loaded.name)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise PipelineError(
            f"model '{loaded.name}': step 'ONNX check' failed: {first_line(exc)}"
        ) from exc
    check_portable(model, loaded.name)
    return model.SerializeToString(deterministic=True)


def check_portable(model: onnx.ModelProto, name: str) -> None:
    """Fail unless ``model`` holds only :data:`PORTABLE_OPS` on :data:`PORTABLE_TYPES`.

    What the stage can check without the other runtimes installed; the tests and
    ``make verify-runtimes`` run the files in OpenVINO and OpenCV themselves.
    """
    ops = {node.op_type for node in model.graph.node}
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    types = {value.type.tensor_type.elem_type for value in values} - {0}  # 0: not a tensor
    types |= {tensor.data_type for tensor in model.graph.initializer}
    types |= {
        attribute.i
        for node in model.graph.node
        for attribute in node.attribute
        if node.op_type == "Cast" and attribute.name == "to"
    }
    problems = [f"operator {op}" for op in sorted(ops - PORTABLE_OPS)]
    problems += [
        f"{onnx.helper.tensor_dtype_to_np_dtype(t)} tensors" for t in sorted(types - PORTABLE_TYPES)
    ]
    if problems:
        raise PipelineError(
            f"model '{name}': step 'portability check' failed: the graph holds "
            f"{', '.join(problems)}, which not every target runtime (onnxruntime, OpenVINO, "
            f"OpenCV DNN) runs"
        )


class Agreement(NamedTuple):
    """How onnxruntime's logits compare with PyTorch's over the same digits."""

    disagreements: int  # digits whose class differs
    max_difference: float  # the largest difference of any logit


def compare_logits(
    name: str, onnx_logits: np.ndarray, torch_logits: np.ndarray, tolerance: float = TOLERANCE
) -> Agreement:
    """Compare the two; fail unless every class agrees and every logit is within tolerance."""
    disagree = int((onnx_logits.argmax(axis=1) != torch_logits.argmax(axis=1)).sum())
    difference = float(np.abs(onnx_logits - torch_logits).max()) if len(onnx_logits) else 0.0
    if disagree or not difference <= tolerance:
        raise PipelineError(
            f"model '{name}': step 'verify with onnxruntime' failed: {disagree} of "
            f"{len(onnx_logits)} test digits get another class from onnxruntime than from "
            f"PyTorch; largest logit difference {difference:.3g} (tolerance {tolerance:g})"
        )
    return Agreement(disagree, difference)


def run_export(
    checkpoint: Path,
    model_name: str,
    images_dir: Path,
    onnx_path: Path,
    metrics_path: Path,
    batch_size: int = BATCH_SIZE,
) -> dict:
    """The export stage: verify the ONNX file on the test split, then write it and metrics.

    ``batch_size``: digits per forward pass of the PyTorch reference, as the evaluate
    stage runs it.
    """
    try:
        loaded = load_checkpoint(checkpoint, expected_model=model_name)
    except PipelineError as exc:
        raise PipelineError(f"model '{model_name}': step 'load checkpoint' failed: {exc}") from exc
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    data = export_onnx(loaded, digest)
    if export_onnx(loaded, digest) != data:
        raise PipelineError(
            f"model '{model_name}': step 'determinism check' failed: two exports differ"
        )
    cpu = torch.device("cpu")  # the evaluate stage's settings, on the CPU onnxruntime runs on
    reference = ready(loaded, cpu)
    test_set = read_splits(images_dir, train=False).test
    result = evaluate_checkpoint(reference, test_set.images, test_set.labels, batch_size)
    with atomic_path(onnx_path) as tmp:  # renamed into place only once verified
        tmp.write_bytes(data)
        exported = open_model(tmp, model_name)
        onnx_logits = exported.logits(test_set.images.numpy())
        agreement = compare_logits(model_name, onnx_logits, result.logits.numpy())
    labels = test_set.labels.numpy()
    metrics = {
        "onnx_accuracy": round(float((onnx_logits.argmax(axis=1) == labels).mean()), 6),
        "pytorch_accuracy": round(result.accuracy, 6),
        "test_images": len(labels),
        "disagreements": agreement.disagreements,
        "max_logit_difference": float(f"{agreement.max_difference:.3g}"),
        "tolerance": TOLERANCE,
        "opset": OPSET,
        "size_bytes": len(data),
        "provenance": {
            "train": loaded.provenance,
            "export": {
                **provenance(cpu, torch.get_num_threads(), {"test": test_set.sha256}),
                "onnx": onnx.__version__,
                "onnxruntime": ort.__version__,
            },
        },
    }
    write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    log.info(
        "%s: %s, %d bytes, ONNX accuracy %.4f (PyTorch %.4f), largest logit difference %.2g",
        model_name,
        onnx_path,
        len(data),
        metrics["onnx_accuracy"],
        metrics["pytorch_accuracy"],
        agreement.max_difference,
    )
    return metrics
