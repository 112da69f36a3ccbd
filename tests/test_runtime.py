"""The device choice, on the CPU: automatic, overridden, or refused with a clear error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.model.runtime import DEVICE_ENV, make_deterministic, pick_device, provenance


def test_without_the_variable_cuda_is_taken_when_present(monkeypatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_the_variable_chooses_the_cpu(monkeypatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert pick_device() == torch.device("cpu")


def test_an_absent_cuda_device_is_a_clear_error(monkeypatch) -> None:
    present = torch.cuda.device_count() if torch.cuda.is_available() else 0
    monkeypatch.setenv(DEVICE_ENV, f"cuda:{present}")
    with pytest.raises(
        PipelineError, match=f"no such CUDA device on this machine .{present} found"
    ):
        pick_device()


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", "mps"])
def test_a_device_that_is_not_cpu_or_cuda_is_refused(monkeypatch, name: str) -> None:
    monkeypatch.setenv(DEVICE_ENV, name)
    with pytest.raises(PipelineError, match=f"{DEVICE_ENV}='{name}'"):
        pick_device()


def test_determinism_switches_are_set() -> None:
    make_deterministic(0)
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32


def test_provenance_of_a_cpu_run_names_no_gpu() -> None:
    record = provenance(torch.device("cpu"), 2, {"test": "abc"})
    assert record["threads"] == 2 and record["data_sha256"] == {"test": "abc"}
    assert "gpu" not in record and "cuda" not in record


def test_workers_share_the_cores(monkeypatch) -> None:
    from mnist_pipeline.model.runtime import WORKERS_ENV, cpu_threads, machine_cores

    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert cpu_threads() == machine_cores()
    monkeypatch.setenv(WORKERS_ENV, "2")
    assert cpu_threads() == max(1, machine_cores() // 2)
    monkeypatch.setenv(WORKERS_ENV, str(10 * machine_cores()))
    assert cpu_threads() == 1  # never none
    monkeypatch.setenv(WORKERS_ENV, "two")
    with pytest.raises(PipelineError, match=f"{WORKERS_ENV}='two'"):
        cpu_threads()


def slot_script(slots_dir: Path) -> str:
    """Python code that claims one of 2 GPU slots in ``slots_dir``, prints it, then waits for
    its stdin to close."""
    return (
        "import sys; from pathlib import Path; from mnist_pipeline.model import runtime; "
        f"print(runtime.gpu_slot(2, Path({str(slots_dir)!r})), flush=True); sys.stdin.read()"
    )


def claimed_slot(slots_dir: Path) -> str:
    """The slot a short-lived process gets."""
    script = [sys.executable, "-c", slot_script(slots_dir)]
    return subprocess.run(script, input="", capture_output=True, text=True, check=True).stdout


def test_each_gpu_slot_is_held_by_one_live_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(  # a worker that holds its slot until killed
        [sys.executable, "-c", slot_script(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        assert claimed_slot(tmp_path).strip() == "1"  # slot 0 is held: the next GPU
    finally:
        holder.kill()  # as SIGKILL: the kernel drops its lock
        holder.wait()
    assert claimed_slot(tmp_path).strip() == "0"
