"""Bit-for-bit reproducibility: ``dvc repro -f`` twice gives the same bytes for every output.

Drives ``scripts/verify_repro.py`` (what ``make verify-repro`` runs on the real data) on
the small slice, so the script is tested too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from helpers import REPO_ROOT, models, run

pytestmark = pytest.mark.slow

# One core, so one thread per stage: a rerun must match at any fixed thread count, and two
# threads on two busy cores make the small pipeline several times slower on a shared machine.
ONE_CORE = ["taskset", "-c", str(max(os.sched_getaffinity(0)))]

MUST_MATCH = [
    "data/raw/mnist_train.tar.gz",
    "data/raw/mnist_test.tar.gz",
    *(
        path
        for model in models()
        for path in (
            f"models/{model}.pt",
            f"plots/models/{model}/history.csv",
            f"plots/models/{model}/confusion.csv",
            f"metrics/{model}.json",
            f"models/onnx/{model}.onnx",
        )
    ),
]


def test_repro_twice_gives_identical_bytes(repo_copy: Path, tmp_path: Path) -> None:
    report = tmp_path / "hashes.json"
    script = REPO_ROOT / "scripts" / "verify_repro.py"
    result = run(
        [*ONE_CORE, sys.executable, str(script), str(repo_copy), "--json", str(report)], repo_copy
    )
    first, second = json.loads(report.read_text())["runs"]
    assert set(MUST_MATCH) <= set(first)
    for path in MUST_MATCH:
        assert first[path] == second[path] != "missing", path
    assert first == second  # every other output too (images, figures, summary)
    for path in MUST_MATCH:
        assert f"{path} " in result.stdout and first[path] in result.stdout
    assert f"{len(first)} of {len(first)} outputs identical" in result.stdout
