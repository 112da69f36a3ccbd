"""Process set-up shared by the stages: logging, seeding, determinism and the device."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def cpu_threads() -> int:
    """The cores this process may use: fixed per machine, so results repeat there."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def make_deterministic(seed: int) -> torch.Generator:
    """Seed every generator, force deterministic kernels, and return the run's generator."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.set_num_threads(cpu_threads())
    return torch.Generator().manual_seed(seed)


def pick_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
