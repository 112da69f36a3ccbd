"""Process set-up for the model-side stages: the device, threads, determinism, provenance.

One place decides the device (:func:`pick_device`) and the thread count
(:func:`cpu_threads`, :func:`one_thread`), one sets every switch that makes a run repeat
(:func:`make_deterministic`, for training and evaluation alike), and one records what
produced a result (:func:`provenance`): the same code and params give the same bytes only
on the same hardware, software and thread count, so those are written beside the result.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import random
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from mnist_pipeline.core.errors import PipelineError

DEVICE_ENV = "MNIST_PIPELINE_DEVICE"  # cpu, cuda or cuda:N; unset: CUDA when present
# How many training processes share this machine, as `dvc queue start -j N` runs N: each
# then takes 1/N of the cores, and on a machine with several GPUs a GPU of its own.
WORKERS_ENV = "MNIST_PIPELINE_WORKERS"
_held_slot: list[int] = []  # the open, locked slot file of this process (see gpu_slot)


def machine_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def workers() -> int:
    """``$MNIST_PIPELINE_WORKERS``: the training processes that share the machine (unset: 1)."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise PipelineError(
            f"{WORKERS_ENV}={value!r}: expected a whole number of workers, 1 or more"
        )
    return int(value)


def cpu_threads() -> int:
    """This process's share of the cores: all of them, or 1/N with N workers (at least one).

    Fixed per machine and worker count, so results repeat there; the count is in
    :func:`provenance`, since a different count gives different bytes.
    """
    return max(1, machine_cores() // workers())


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed torch ops on a single intra-op thread, then restore the count.

    For per-pixel batch work (indexing, augmentation), too small to share between threads:
    each op would open an OpenMP parallel region and wait on a descheduled thread. Its
    results do not depend on the thread count.

    torch's thread count is process-wide: set from a background thread (the batch
    prefetcher), it would change the count the main thread's training step runs on, and
    with it the step's bytes. So a background thread may only enter this while the count
    is already 1, as it is for a model trained on one thread; anything else is an error.
    """
    threads = torch.get_num_threads()
    if threads != 1 and threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"one_thread() in background thread '{threading.current_thread().name}' while "
            f"torch runs on {threads} threads: it would change the main thread's count; "
            "prepare batches in the background only for a model trained on one thread"
        )
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def gpu_slot(count: int, slots_dir: Path | None = None) -> int:
    """The lowest of ``count`` slots no live process holds, held by this one until it exits.

    A slot is an exclusive ``flock`` on ``slots_dir/slot-<i>.lock``; the kernel drops it
    when its process dies, even by SIGKILL, so a killed worker never keeps its GPU.
    With every slot taken, slot 0.
    """
    if _held_slot:
        return _held_slot[0]
    directory = slots_dir or Path(tempfile.gettempdir()) / f"mnist-pipeline-{os.getuid()}-gpus"
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(count):
        fd = os.open(directory / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held_slot[:] = [slot, fd]
        return slot
    return 0


def pick_device() -> torch.device:
    """``$MNIST_PIPELINE_DEVICE`` if set, else CUDA when present, else the CPU.

    With several GPUs and ``$MNIST_PIPELINE_WORKERS`` above 1, each process takes the
    first GPU no other live worker holds (:func:`gpu_slot`).
    """
    wanted = os.environ.get(DEVICE_ENV, "").strip()
    if not wanted:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        gpus = torch.cuda.device_count()
        if gpus > 1 and workers() > 1:  # queue workers on a machine with several GPUs
            return torch.device("cuda", gpu_slot(gpus))
        return torch.device("cuda")
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
