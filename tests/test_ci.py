"""The pieces of `make ci`: accuracy floors, the diff tables and the report's destinations.
(The whole run, through dvc, is in test_workflows.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnist_pipeline.ci import (
    FloorCheck,
    build_report,
    check_floors,
    image_markdown,
    publish,
    tidy_diff,
)
from mnist_pipeline.errors import PipelineError

METRICS_DIFF = """\
| Path              | Metric                 | main    | workspace   | Change   |
|-------------------|------------------------|---------|-------------|----------|
| metrics/mlp.json  | accuracy               | 0.9871  | 0.9852      | -0.0019  |
| metrics/mlp.json  | per_class.0.precision  | 0.99    | 0.98        | -0.01    |
"""
PARAMS_DIFF = """\
| Path        | Param              | main   | workspace   |
|-------------|--------------------|--------|-------------|
| params.yaml | models.mlp.epochs  | 30     | 3           |
"""


def write_metrics(directory: Path, **accuracies: object) -> Path:
    directory.mkdir(exist_ok=True)
    for model, accuracy in accuracies.items():
        (directory / f"{model}.json").write_text(json.dumps({"accuracy": accuracy}))
    return directory


def test_floors_pass_and_fail_by_model(tmp_path: Path) -> None:
    metrics = write_metrics(tmp_path / "metrics", lenet5=0.9912, mlp=0.9791)
    checks = check_floors({"lenet5": 0.99, "mlp": 0.98}, metrics)
    assert [(c.model, c.passed) for c in checks] == [("lenet5", True), ("mlp", False)]
    assert checks[1].describe() == (
        "mlp: test accuracy 0.9791 is below its floor 0.9800 (accuracy_floor.mlp in params.yaml)"
    )
    assert FloorCheck("mlp", 0.98, 0.98).passed  # the floor itself passes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "mlp.json: metrics missing"),
        ("{not json", "mlp.json: no readable 'accuracy'"),
        (json.dumps({"loss": 0.1}), "mlp.json: no readable 'accuracy'"),
        (json.dumps({"accuracy": "high"}), "mlp.json: 'accuracy' is 'high', not a number"),
    ],
)
def test_unreadable_metrics_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "mlp.json").write_text(content)
    with pytest.raises(PipelineError, match=message):
        check_floors({"mlp": 0.98}, tmp_path)


def test_diff_tables_keep_top_level_rows_and_fold_nested_metrics() -> None:
    metrics = tidy_diff(METRICS_DIFF, "metrics", "main", fold_nested=True)
    top, details = metrics.split("<details>")
    assert "| accuracy " in top and "per_class" not in top
    assert "1 nested metrics changed" in details and "per_class.0.precision" in details
    params = tidy_diff(PARAMS_DIFF, "params", "main")
    assert params.strip() == PARAMS_DIFF.strip()  # params are all nested keys: kept as is
    bare = "| Path   | Metric   | main   | workspace   | Change   |\n|---|---|---|---|---|\n"
    assert tidy_diff(bare, "metrics", "main") == "_No metrics changed against `main`._\n"


def test_images_link_beside_the_report_or_inline_within_a_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = []
    for name, size in (("a", 300), ("b", 3000), ("c", 300)):
        images.append(tmp_path / "rendered" / f"{name}.png")
        images[-1].parent.mkdir(exist_ok=True)
        images[-1].write_bytes(b"\x89PNG" + bytes(size))
    linked = image_markdown(images, tmp_path)
    assert "![a](rendered/a.png)" in linked and "![c](rendered/c.png)" in linked
    monkeypatch.setattr("mnist_pipeline.ci.INLINE_IMAGE_BUDGET", 1000)
    inline = image_markdown(images, None)
    assert inline.count("](data:image/png;base64,iVBORw") == 2  # a and c fit, b does not
    assert "b.png: too large to inline" in inline


def test_report_goes_to_the_step_summary_and_to_a_printed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [FloorCheck("lenet5", 0.995, 0.99), FloorCheck("mlp", 0.97, 0.98)]
    report = build_report(checks, METRICS_DIFF, PARAMS_DIFF, "![a](rendered/a.png)\n", "main")
    assert report.startswith("# Pipeline report: accuracy floors FAILED\n")
    assert "| mlp | 0.9700 | 0.9800 | **FAIL** |" in report
    assert "## Metrics against `main`" in report and "## Params against `main`" in report

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    path = publish(report, "inline version\n", tmp_path / "out" / "ci-report.md")
    assert summary.read_text() == "earlier step\ninline version\n\n"
    assert path.read_text() == report
    assert report in capsys.readouterr().out

    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    publish("second\n", "inline\n", path)
    assert path.read_text() == "second\n"
    assert summary.read_text() == "earlier step\ninline version\n\n"  # untouched
