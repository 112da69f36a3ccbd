"""Process set-up for the model-side stages: the device, determinism, and provenance.

One place decides the device (:func:`pick_device`), one sets every switch that makes a
run repeat (:func:`make_deterministic`, for training and evaluation alike), and one
records what produced a result (:func:`provenance`): the same code and params give the
same bytes only on the same hardware, software and thread count, so those are written
beside the result.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

from mnist_pipeline.errors import PipelineError

DEVICE_ENV = "MNIST_PIPELINE_DEVICE"  # cpu, cuda or cuda:N; unset: CUDA when present


def cpu_threads() -> int:
    """The cores this process may use: fixed per machine, so results repeat there."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pick_device() -> torch.device:
    """``$MNIST_PIPELINE_DEVICE`` if set, else CUDA when present, else the CPU."""
    wanted = os.environ.get(DEVICE_ENV, "").strip()
    if not wanted:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(wanted)
    except RuntimeError as exc:
        raise PipelineError(
            f"{DEVICE_ENV}={wanted!r}: not a device name (cpu, cuda, cuda:N)"
        ) from exc
    if device.type not in ("cpu", "cuda"):
        raise PipelineError(f"{DEVICE_ENV}={wanted!r}: this pipeline runs on cpu or cuda")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = device.index or 0
        if index >= count:
            raise PipelineError(
                f"{DEVICE_ENV}={wanted!r}: no such CUDA device on this machine "
                f"({count} found); unset it to choose automatically"
            )
    return device


def make_deterministic(seed: int = 0) -> torch.Generator:
    """Seed every generator, force deterministic kernels, and return the run's generator.

    On CUDA also: TF32 off (full float32 matmuls and convolutions), no cuDNN autotuning,
    and the cuBLAS workspace setting deterministic algorithms need, set before any CUDA
    call. Training and evaluation both call this, so both run the same kernels.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(cpu_threads())
    return torch.Generator().manual_seed(seed)


def cpu_name() -> str:
    """The CPU's model name, as ``lscpu`` prints it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: torch.device, threads: int, data: dict[str, str]) -> dict[str, object]:
    """What produced a result: software, device, kernels, threads, and the data's digests.

    ``data``: each split read, with its sha256 from the images' manifest. Rerunning on a
    machine where every field matches gives the same bytes.
    """
    record: dict[str, object] = {
        "torch": str(torch.__version__),
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "threads": threads,
    }
    if device.type == "cuda":
        record["gpu"] = str(torch.cuda.get_device_name(device))
        record["cuda"] = str(torch.version.cuda)
        record["cudnn"] = torch.backends.cudnn.version()
    record["data_sha256"] = dict(data)
    return record
