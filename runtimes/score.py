"""Run exported models in OpenVINO and OpenCV's DNN module: the runtimes kept out of uv.lock.

    .runtimes/bin/python runtimes/score.py PIXELS.npy OUT_DIR MODEL.onnx [MODEL.onnx ...]

Runs in the separate environment ``make runtimes`` builds from runtimes/requirements.txt
(numpy, openvino, opencv-python-headless; no torch, no mnist_pipeline). Reads uint8
pixels, N x 1 x 28 x 28, from a ``.npy`` file and writes each runtime's float32 N x 10
logits for each model as ``OUT_DIR/<model file stem>.<runtime>.npy``: OpenVINO in float32,
OpenCV, and, for comparison, OpenVINO at the precision it picks when not told (bfloat16 on
CPUs with AMX or AVX-512 BF16). Prints the runtimes'
versions as one JSON line. A model a runtime cannot load or run exits 1 with one line on
stderr naming the runtime and the file.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import openvino

BATCH = 1000  # digits per forward pass: bounds the deskew's N x 28 x 28 x 28 weights
# OpenVINO's CPU plugin computes in bfloat16 by default on CPUs with AMX or AVX-512 BF16;
# float32 is what the other runtimes compute in, and what agrees with PyTorch
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}

Runner = Callable[[np.ndarray], np.ndarray]


def openvino_runner(path: Path, config: dict[str, str] = OPENVINO_CONFIG) -> Runner:
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    return lambda pixels: compiled(pixels)[0]


def opencv_runner(path: Path) -> Runner:
    net = cv2.dnn.readNetFromONNX(str(path))

    def run(pixels: np.ndarray) -> np.ndarray:
        net.setInput(pixels)
        return net.forward()

    return run


RUNTIMES: dict[str, Callable[[Path], Runner]] = {
    "openvino": openvino_runner,
    "opencv": opencv_runner,
    # for comparison: what OpenVINO computes when not told the precision
    "openvino-default": functools.partial(openvino_runner, config={}),
}


def versions() -> dict[str, str]:
    """Each runtime's version; for OpenVINO's default, the precision it picks on this CPU."""
    default = openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    return {
        "openvino": openvino.get_version(),
        "opencv": cv2.__version__,
        "openvino-default": f"{default} by default",
    }


def logits(runner: Runner, pixels: np.ndarray) -> np.ndarray:
    parts = [runner(pixels[start : start + BATCH]) for start in range(0, len(pixels), BATCH)]
    return np.concatenate(parts).astype(np.float32, copy=False)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    pixels = np.load(argv[0], allow_pickle=False)
    if pixels.dtype != np.uint8 or pixels.shape[1:] != (1, 28, 28):
        print(
            f"{argv[0]}: want uint8 N x 1 x 28 x 28, got {pixels.dtype} {pixels.shape}",
            file=sys.stderr,
        )
        return 2
    out = Path(argv[1])
    for model in map(Path, argv[2:]):
        for runtime, make_runner in RUNTIMES.items():
            try:
                result = logits(make_runner(model), np.ascontiguousarray(pixels))
            except Exception as exc:  # each runtime raises its own error types
                detail = " ".join(str(exc).split())[:300]
                print(f"{runtime}: {model}: {type(exc).__name__}: {detail}", file=sys.stderr)
                return 1
            np.save(out / f"{model.stem}.{runtime}.npy", result)
    print(json.dumps(versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
