"""Shared pieces of the benchmarks: timing, the figures they print, and the machine line."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
INPUTS = {  # what a benchmark may read, and where `make bench` has it
    "images": REPO_ROOT / "data" / "images",
    "raw": REPO_ROOT / "data" / "raw",
    "params": REPO_ROOT / "params.yaml",
}


def bench_parser(doc: str, *inputs: str) -> argparse.ArgumentParser:
    """A benchmark's command line: ``--repeats`` and each named input of ``INPUTS``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    for name in inputs:
        parser.add_argument(f"--{name}", type=Path, default=INPUTS[name])
    return parser


@dataclass(frozen=True)
class Figure:
    """One measured figure beside its baseline, and whether the goal on their ratio is met.

    ``ratio`` is ``baseline / value`` for a speed-up goal (``higher``) and
    ``value / baseline`` for a cost goal (``lower``); ``target`` is the bound on it.
    """

    goal: str
    what: str
    value: float
    baseline_what: str
    baseline: float
    target: float | None = None  # None: reported for context, no goal on it
    higher: bool = True
    unit: str = "s"

    @property
    def ratio(self) -> float:
        if self.higher:
            return self.baseline / self.value if self.value else float("inf")
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher else self.ratio <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "info"
        return f"{'>=' if self.higher else '<='} {self.target:g}x"

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "-"}[self.met]

    def line(self) -> str:
        return (
            f"[{self.goal}] {self.what}: {self.value:.3f} {self.unit} | {self.baseline_what}: "
            f"{self.baseline:.3f} {self.unit} | ratio {self.ratio:.2f}x "
            f"(goal {self.target_text}): {self.verdict}"
        )


def limit(goal: str, what: str, value: float, bound: float, unit: str = "s") -> Figure:
    """A figure whose goal is an absolute bound: its ratio to the bound must be <= 1."""
    return Figure(goal, what, value, "limit", bound, target=1.0, higher=False, unit=unit)


@dataclass(frozen=True)
class Check:
    """A goal that is a fact rather than a ratio, e.g. which stages a change reruns."""

    goal: str
    what: str
    observed: str
    expected: str
    ok: bool

    @property
    def verdict(self) -> str:
        return "met" if self.ok else "MISSED"

    def line(self) -> str:
        return (
            f"[{self.goal}] {self.what}: {self.observed} | expected: {self.expected}: "
            f"{self.verdict}"
        )


Result = Figure | Check


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


FASTEST_OF = 5  # rounds at least, for a goal read on the fastest round


def rounds_for_fastest(repeats: int) -> int:
    """Rounds for a goal read on its fastest round, as ``timeit`` reads one.

    On a shared machine the same run's time swings between rounds by more than a goal's
    margin (a third for a training epoch, several-fold for writing 70,000 files); the
    fastest of at least :data:`FASTEST_OF` rounds is the least disturbed.
    """
    return max(repeats, FASTEST_OF)


def show(results: list[Result]) -> None:
    """Print each result on its own line (benchmarks print their figures)."""
    for result in results:
        print(result.line(), flush=True)


def machine_line() -> str:
    """CPU, cores, memory, load, Python and torch: what the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(meminfo.read_text().split()[1])
        memory = f", {total_kb / 2**20:.0f} GiB RAM"
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (
        f"{cpu}, {cores} cores usable{memory}, load average {load} (1/5/15 min); "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
