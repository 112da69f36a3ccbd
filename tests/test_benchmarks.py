"""Smoke tests of the benchmark scripts on the small data: they run and report every goal.

No timing is asserted here: the figures depend on the machine.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from helpers import REPO_ROOT, fast_params
from mnist_pipeline.core.params import Params, parse_params


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmarks folder on sys.path, as ``python benchmarks/run_all.py`` has it."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        yield importlib.import_module("run_all")
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def params() -> Params:
    return parse_params(fast_params())


def check_figures(results: list, goals: set[str]) -> None:
    assert {r.goal for r in results} == goals
    for result in results:
        if hasattr(result, "value"):
            assert math.isfinite(result.value) and result.value >= 0, result.line()
            assert math.isfinite(result.ratio), result.line()
        assert result.line().startswith(f"[{result.goal}]")


def test_data_train_and_eval_benchmarks_report_their_goals(
    bench: ModuleType, small_images: Path, small_raw: Path, params: Params
) -> None:
    data = bench.bench_data.run(small_images, params.models["lenet5"], repeats=1)
    assert [f.target for f in data] == [20, 100, None]
    train = bench.bench_train.run(small_images, params.models, ["lenet5", "mlp"], repeats=1)
    # per model: the goal (fastest rounds), the medians, the 1-epoch run; the MLP also
    # beside all cores
    assert [f.target for f in train] == [1.15, None, None, 1.5, None, None, None]
    assert "fastest of 5 rounds" in train[0].what and "median of 5" in train[1].what
    evaluation = bench.bench_eval.run(small_images, params, repeats=1)
    png = bench.bench_png.run(small_images, small_raw, repeats=1)
    assert "1,500 members" in png[-1].what
    results = data + train + evaluation + png
    check_figures(results, {"data path", "training loop", "evaluation", "png decoding"})
    text = bench.markdown(results, "start machine", "end machine", "python x", 60.0)
    rows = [line for line in text.splitlines() if line.startswith(("| data", "| training"))]
    assert len(rows) == len(data) + len(train)
    assert "start machine" in text and "end machine" in text


@pytest.mark.slow
def test_pipeline_benchmark_reruns_only_the_changed_model(
    bench: ModuleType, small_raw: Path
) -> None:
    results = bench.bench_pipeline.run(small_raw, repeats=1, verify=False)
    check_figures(results, {"pipeline", "memory"})
    (rerun,) = [r for r in results if not hasattr(r, "value")]
    assert rerun.ok, rerun.line()
    assert rerun.observed == "evaluate@mlp, export@mlp, report, train@mlp"
    extract = [r for r in results if r.what.startswith("extract(), ")]
    fastest, median = extract[0], extract[1]  # the goal is on the fastest of 5 rounds
    assert "fastest of 5 rounds" in fastest.what and fastest.target == 1.0
    assert "median of 5 rounds" in median.what and median.value >= fastest.value
