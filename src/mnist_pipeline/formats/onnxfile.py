"""Open and run an exported model's ONNX file with onnxruntime alone: no torch needed.

An exported file takes raw MNIST pixels (uint8, N x 1 x 28 x 28, 0-255, a light digit on
black) and returns N x 10 logits; deskewing and normalisation happen inside it. Its
metadata names the model it holds. :func:`open_model` refuses a file that is truncated,
is not ONNX, or does not have that interface or the model it is expected to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError

from mnist_pipeline.core.errors import PipelineError, first_line
from mnist_pipeline.core.mnist import NUM_CLASSES, SIDE

INPUT_NAME = "pixels"
OUTPUT_NAME = "logits"
PRODUCER = "mnist-pipeline"
MODEL_KEY = "mnist_pipeline.model"  # metadata: the model's name in params.yaml
DESKEW_KEY = "mnist_pipeline.deskew"  # metadata: "true" when the graph deskews each digit
# what a file must declare, as (ONNX element type, shape); a str dimension is dynamic
INPUT_TYPE = (onnx.TensorProto.UINT8, (str, 1, SIDE, SIDE))
OUTPUT_TYPE = (onnx.TensorProto.FLOAT, (str, NUM_CLASSES))


@dataclass(frozen=True)
class OnnxModel:
    """An onnxruntime session over a checked file, and the model name its metadata gives."""

    path: Path
    name: str
    deskew: bool
    session: ort.InferenceSession

    def logits(self, pixels: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """N x 10 float32 logits for uint8 ``pixels`` (N x 28 x 28 or N x 1 x 28 x 28)."""
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, 1, SIDE, SIDE)
        parts = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: pixels[start : start + batch_size]})[0]
            for start in range(0, len(pixels), batch_size)
        ]
        return np.concatenate(parts) if parts else np.empty((0, NUM_CLASSES), np.float32)


def _signature(value: onnx.ValueInfoProto) -> tuple[int, tuple[int | type, ...]]:
    tensor = value.type.tensor_type
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else str for d in tensor.shape.dim
    )  # a named (or unnamed) dimension is a dynamic one
    return tensor.elem_type, dims


def _describe(signature: tuple[int, tuple[int | type, ...]]) -> str:
    elem, dims = signature
    shape = ", ".join("N" if d is str else str(d) for d in dims)
    return f"{onnx.helper.tensor_dtype_to_np_dtype(elem) if elem else '?'} [{shape}]"


def check_interface(model: onnx.ModelProto, where: str, expected: str | None = None) -> str:
    """The model name ``model``'s metadata gives; fail unless it has the exported interface.

    ``expected``: the model it must be (its name in params.yaml), if known.
    """
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    name = metadata.get(MODEL_KEY)
    if not name:
        raise PipelineError(
            f"{where}: no '{MODEL_KEY}' in its metadata: not a file the export stage wrote, "
            f"or one cut short (the metadata is stored last)"
        )
    if expected is not None and name != expected:
        raise PipelineError(f"{where}: holds model '{name}', expected '{expected}'")
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    for kind, values, want_name, want in [
        ("input", inputs, INPUT_NAME, INPUT_TYPE),
        ("output", list(graph.output), OUTPUT_NAME, OUTPUT_TYPE),
    ]:
        found = [(value.name, _signature(value)) for value in values]
        if found != [(want_name, want)]:
            seen = "; ".join(f"'{n}' {_describe(s)}" for n, s in found) or "none"
            raise PipelineError(
                f"{where}: model '{name}' must have one {kind} '{want_name}' {_describe(want)}, "
                f"has {seen}"
            )
    return name


def open_model(path: Path, expected: str | None = None, threads: int = 0) -> OnnxModel:
    """Check the ONNX file at ``path`` and open an onnxruntime session on it.

    ``expected``: the model the file must hold (its name in params.yaml), if known;
    ``threads``: onnxruntime's intra-op threads (0: its default, one per physical core).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: no such ONNX file (export the model first)") from exc
    except IsADirectoryError as exc:
        raise PipelineError(f"{path}: is a directory, not an ONNX file") from exc
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise PipelineError(f"{path}: not a readable ONNX file (truncated?): {exc}") from exc
    name = check_interface(model, str(path), expected)
    try:
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime warns on stderr otherwise
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnx and onnxruntime raise their own exception types
        raise PipelineError(
            f"{path}: model '{name}' is not a valid ONNX graph: {first_line(exc)}"
        ) from exc
    deskew = {p.key: p.value for p in model.metadata_props}.get(DESKEW_KEY) == "true"
    return OnnxModel(path, name, deskew, session)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of N x 10 logits, in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
