"""End to end: the real `dvc` CLI runs the whole pipeline on the small data in a temp repo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import MODEL_STAGES, copy_repo, run, stages_run
from mnist_pipeline.onnxfile import open_model

MODELS = ("lenet5", "mlp")
OUTPUTS = [
    "data/raw/mnist_train.tar.gz",
    "data/raw/mnist_test.tar.gz",
    "metrics/summary.md",
    "plots/comparison/accuracy.png",
    "plots/comparison/loss.png",
    *[
        path
        for model in MODELS
        for path in (
            f"models/{model}.pt",
            f"metrics/{model}.json",
            f"plots/{model}/history.csv",
            f"plots/{model}/confusion.csv",
            f"plots/{model}/misclassified.png",
            f"models/{model}.onnx",
            f"metrics/{model}-onnx.json",
        )
    ],
]


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_and_only_what_a_change_touches(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo_copy = copy_repo(reproduced_repo[0], tmp_path / "repo")
    assert stages_run(reproduced_repo[1]) == {"fetch", "extract", *MODEL_STAGES}
    for output in OUTPUTS:
        assert (repo_copy / output).stat().st_size > 0, output
    assert len(list((repo_copy / "data/images/train").glob("*/*.png"))) == 1000
    assert len(list((repo_copy / "data/images/test").glob("*/*.png"))) == 500

    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo_copy).stdout

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo_copy).stdout)
    metrics = next(iter(shown.values()))["data"]
    for model in MODELS:
        assert metrics[f"metrics/{model}.json"]["data"]["accuracy"] > 0.5

    run(["dvc", "plots", "show"], repo_copy)
    assert (repo_copy / "dvc_plots" / "index.html").stat().st_size > 0

    params = yaml.safe_load((repo_copy / "params.yaml").read_text())
    params["models"]["mlp"]["lr"] = 0.05
    (repo_copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = run(["dvc", "repro"], repo_copy)
    assert stages_run(second.stdout) == {"train@mlp", "evaluate@mlp", "export@mlp", "report"}


@pytest.mark.slow
def test_dvc_artifacts_get_copies_an_exported_model_out(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    """The model registry: a version registered (``gto register``: a Git tag), then
    ``dvc artifacts get . <model>`` copies out the file of its latest version."""
    repo = copy_repo(reproduced_repo[0], tmp_path / "repo")
    listed = yaml.safe_load((repo / "dvc.yaml").read_text())["artifacts"]
    assert {name: a["path"] for name, a in listed.items()} == {
        model: f"models/{model}.onnx" for model in MODELS
    }
    assert all(a["type"] == "model" and a["desc"] and a["labels"] for a in listed.values())
    out = tmp_path / "fetched"
    out.mkdir()
    missing = run(["dvc", "artifacts", "get", ".", "lenet5"], repo, check=False)
    assert missing.returncode != 0 and "Unable to find artifact 'lenet5'" in missing.stderr
    for model in MODELS:
        run(["gto", "register", model, "--version", "v1.0.0"], repo)  # tag {model}@v1.0.0
        run(["dvc", "artifacts", "get", ".", model, "-o", str(out / f"{model}.onnx")], repo)
        fetched = (out / f"{model}.onnx").read_bytes()
        assert fetched == (repo / "models" / f"{model}.onnx").read_bytes()
        assert open_model(out / f"{model}.onnx", expected=model).name == model
