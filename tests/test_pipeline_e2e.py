"""End to end: the real `dvc` CLI runs the whole pipeline on the small data in a temp repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import copy_repo, model_stages, models, run, stages_run
from mnist_pipeline.formats.onnxfile import open_model

pytestmark = pytest.mark.slow
MODELS = models()
OUTPUTS = [
    "data/raw/mnist_train.tar.gz",
    "data/raw/mnist_test.tar.gz",
    "plots/comparison/summary.md",
    "plots/comparison/history.csv",
    "plots/comparison/accuracy.png",
    "plots/comparison/loss.png",
    *[
        path
        for model in MODELS
        for path in (
            f"models/{model}.pt",
            f"metrics/{model}.json",
            f"metrics/{model}_live.json",
            f"plots/models/{model}/history.csv",
            f"plots/models/{model}/confusion.csv",
            f"plots/models/{model}/misclassified.png",
            f"models/onnx/{model}.onnx",
            f"metrics/{model}-onnx.json",
        )
    ],
]


def test_dvc_repro_runs_every_stage_and_only_what_a_change_touches(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo_copy = copy_repo(reproduced_repo[0], tmp_path / "repo")
    assert stages_run(reproduced_repo[1]) == {"fetch", "extract", *model_stages()}
    for output in OUTPUTS:
        assert (repo_copy / output).stat().st_size > 0, output
    assert len(list((repo_copy / "data/images/train").glob("*/*.png"))) == 1000
    assert len(list((repo_copy / "data/images/test").glob("*/*.png"))) == 500

    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo_copy).stdout

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo_copy).stdout)
    metrics = next(iter(shown.values()))["data"]
    assert set(metrics) == {
        f"metrics/{model}{kind}.json" for model in MODELS for kind in ("", "_live", "-onnx")
    }
    for model in MODELS:
        assert metrics[f"metrics/{model}.json"]["data"]["accuracy"] > 0.5

    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo_copy).stdout)
    assert not plots.get("errors"), plots["errors"]
    drawn = set(plots["data"])
    for model in MODELS:  # every model's own plots, from its stages' declarations
        for name in ("history.csv", "confusion.csv", "misclassified.png"):
            assert f"plots/models/{model}/{name}" in drawn
    comparison = [name for name in drawn if "every model" in name]
    assert len(comparison) == 2, drawn
    for name in comparison:
        values = plots["data"][name][0]["content"]["data"]["values"]
        assert {row["model"] for row in values} == set(MODELS)
    run(["dvc", "plots", "show"], repo_copy)
    assert (repo_copy / "dvc_plots" / "index.html").stat().st_size > 0

    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["models"]["mlp"]["lr"] = 0.05
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = run(["dvc", "repro"], repo_copy)
    assert stages_run(second.stdout) == {"train@mlp", "evaluate@mlp", "export@mlp", "report"}


def test_dvc_artifacts_get_copies_every_exported_model_out(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    """The model registry: a version registered (``gto register``: a Git tag), then
    ``dvc artifacts get . digit-classifiers`` copies out one ONNX file per model."""
    repo = copy_repo(reproduced_repo[0], tmp_path / "repo")
    listed = yaml.safe_load((repo / "dvc.yaml").read_text())["artifacts"]
    assert {name: a["path"] for name, a in listed.items()} == {"digit-classifiers": "models/onnx"}
    assert all(a["type"] == "model" and a["desc"] and a["labels"] for a in listed.values())
    out = tmp_path / "fetched"
    missing = run(["dvc", "artifacts", "get", ".", "digit-classifiers"], repo, check=False)
    assert missing.returncode != 0 and "Unable to find artifact" in missing.stderr
    run(["gto", "register", "digit-classifiers", "--version", "v1.0.0"], repo)  # a Git tag
    run(["dvc", "artifacts", "get", ".", "digit-classifiers", "-o", str(out)], repo)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{m}.onnx" for m in MODELS)
    for model in MODELS:
        fetched = (out / f"{model}.onnx").read_bytes()
        assert fetched == (repo / "models" / "onnx" / f"{model}.onnx").read_bytes()
        assert open_model(out / f"{model}.onnx", expected=model).name == model
