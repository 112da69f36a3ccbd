"""Training, checkpoints, evaluation and the report on the small real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from helpers import fast_params
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import ModelParams, parse_params
from mnist_pipeline.formats.manifest import read_manifest
from mnist_pipeline.model.checkpoint import load_checkpoint, save_checkpoint
from mnist_pipeline.model.dataset import Splits, read_splits
from mnist_pipeline.model.evaluate import run_evaluation
from mnist_pipeline.model.history import history_csv
from mnist_pipeline.model.inference import evaluate_checkpoint
from mnist_pipeline.model.train import run_training, train_model
from mnist_pipeline.tools.report import run_report

HISTORY_COLUMNS = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"]


@pytest.fixture(scope="module")
def datasets(small_images: Path) -> Splits:
    return read_splits(small_images)


def small_recipe(name: str, **changes: object) -> ModelParams:
    return parse_params(fast_params()).models[name].model_copy(update=changes)


@pytest.fixture(scope="module")
def trained_mlp(datasets: Splits) -> tuple:
    return train_model("mlp", small_recipe("mlp", epochs=4), datasets)


def test_mlp_learns_and_records_history(trained_mlp: tuple) -> None:
    _, history = trained_mlp
    assert [r.epoch for r in history] == [1, 2, 3, 4]
    assert history[-1].test_accuracy > 0.75  # chance is 0.10
    assert history[-1].train_loss < history[0].train_loss
    assert history[-1].lr < history[1].lr  # one-cycle anneals to nearly zero


def test_lenet5_learns(datasets: Splits) -> None:
    _, history = train_model("lenet5", small_recipe("lenet5", epochs=4), datasets)
    assert history[-1].test_accuracy > 0.6


def test_same_seed_gives_identical_weights(datasets: Splits, trained_mlp: tuple) -> None:
    again, _ = train_model("mlp", small_recipe("mlp", epochs=4), datasets)
    other, _ = train_model("mlp", small_recipe("mlp", epochs=4, seed=1), datasets)
    reference = trained_mlp[0].model.state_dict()
    assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in reference.items())
    assert not all(torch.equal(v, other.model.state_dict()[k]) for k, v in reference.items())


def test_history_csv_has_the_documented_columns(trained_mlp: tuple) -> None:
    rows = list(csv.reader(history_csv(trained_mlp[1]).splitlines()))
    assert rows[0] == HISTORY_COLUMNS
    assert len(rows) == 5


def test_checkpoint_round_trip_gives_the_same_predictions(
    tmp_path: Path, trained_mlp: tuple, datasets: Splits
) -> None:
    trained, _ = trained_mlp
    recipe = small_recipe("mlp")
    save_checkpoint(tmp_path / "mlp.pt", "mlp", trained.model, recipe, trained.provenance)
    loaded = load_checkpoint(tmp_path / "mlp.pt")
    assert loaded.name == "mlp" and loaded.net == recipe.net and loaded.net.deskew
    assert loaded.provenance == trained.provenance
    # the same weights through the same kernels: the same computation, so the same bits
    digits = datasets.test.images[:20]
    expected = evaluate_checkpoint(trained, digits).logits
    assert torch.equal(evaluate_checkpoint(loaded, digits).logits, expected)


def test_evaluate_and_report_write_every_output(
    tmp_path: Path, trained_mlp: tuple, small_images: Path
) -> None:
    trained, history = trained_mlp
    save_checkpoint(tmp_path / "mlp.pt", "mlp", trained.model, small_recipe("mlp"), {})
    params = parse_params(fast_params())
    metrics = run_evaluation(
        tmp_path / "mlp.pt",
        "mlp",
        small_images,
        params.evaluate,
        tmp_path / "metrics" / "mlp.json",
        tmp_path / "plots" / "mlp" / "confusion.csv",
        tmp_path / "plots" / "mlp" / "misclassified.png",
    )
    assert json.loads((tmp_path / "metrics" / "mlp.json").read_text()) == metrics
    # the checkpoint's deskewing is applied as in training: the last epoch's figure again
    assert small_recipe("mlp").net.deskew
    assert metrics["accuracy"] == pytest.approx(history[-1].test_accuracy, abs=1e-6)
    assert metrics["parameters"] == 64_630
    assert metrics["errors"] == round((1 - metrics["accuracy"]) * 500)
    assert set(metrics["per_class"]) == {str(d) for d in range(10)}
    rows = list(csv.DictReader((tmp_path / "plots" / "mlp" / "confusion.csv").open()))
    assert len(rows) == 500
    assert sum(r["actual"] != r["predicted"] for r in rows) == metrics["errors"]
    assert (tmp_path / "plots" / "mlp" / "misclassified.png").read_bytes()[:4] == b"\x89PNG"

    (tmp_path / "plots" / "mlp" / "history.csv").write_text(history_csv(history))
    run_report(["mlp"], tmp_path / "metrics", tmp_path / "plots", tmp_path / "cmp")
    assert "| mlp | 64,630 |" in (tmp_path / "cmp" / "summary.md").read_text()
    for figure in ("accuracy.png", "loss.png"):
        assert (tmp_path / "cmp" / figure).read_bytes()[:4] == b"\x89PNG"
    long = list(csv.DictReader((tmp_path / "cmp" / "history.csv").open()))
    assert len(long) == 2 * len(history)  # a row per epoch and split
    last_test = [r for r in long if r["split"] == "test"][-1]
    assert float(last_test["error_rate"]) == pytest.approx(1 - history[-1].test_accuracy)


def evaluate_into(out: Path, images: Path, validation: int = 0) -> dict:
    return run_evaluation(
        out / "mlp.pt",
        "mlp",
        images,
        parse_params(fast_params()).evaluate,
        out / "metrics.json",
        out / "confusion.csv",
        out / "misclassified.png",
        validation=validation,
    )


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory: pytest.TempPathFactory, small_images: Path) -> tuple:
    """The train stage's library call with the last 200 training digits held out."""
    out = tmp_path_factory.mktemp("validated")
    recipe = small_recipe("mlp", epochs=3)
    history = run_training("mlp", recipe, small_images, out / "mlp.pt", out / "h.csv", 200)
    return out, history


def test_hold_out_splits_off_the_last_digits(datasets: Splits) -> None:
    train_set = datasets.train
    kept, held_out = train_set.hold_out(200)
    assert (len(kept), len(held_out)) == (800, 200)
    assert torch.equal(held_out.labels, train_set.labels[-200:])
    assert torch.equal(kept.images, train_set.images[:800])
    for count in (0, 1000):
        with pytest.raises(PipelineError, match=f"a validation split of {count} digits"):
            train_set.hold_out(count)


def test_validation_is_tracked_per_epoch_and_in_the_metrics(
    validated_run: tuple, small_images: Path
) -> None:
    out, history = validated_run
    rows = list(csv.DictReader((out / "h.csv").open()))
    assert list(rows[0]) == [*HISTORY_COLUMNS, "validation_loss", "validation_accuracy"]
    assert len(rows) == 3 and 0.5 < float(rows[-1]["validation_accuracy"]) <= 1
    metrics = evaluate_into(out, small_images, validation=200)
    assert metrics["validation_images"] == 200
    assert metrics["validation_accuracy"] == pytest.approx(
        history[-1].validation_accuracy, abs=1e-6
    )
    assert metrics["validation_loss"] == pytest.approx(history[-1].validation_loss, abs=1e-5)


def test_evaluate_refuses_a_model_trained_on_another_split(
    validated_run: tuple, small_images: Path
) -> None:
    out, _ = validated_run
    with pytest.raises(PipelineError, match="trained with 200 validation digits held out"):
        evaluate_into(out, small_images, validation=0)


def test_checkpoint_and_metrics_say_what_produced_them(
    validated_run: tuple, small_images: Path
) -> None:
    out, _ = validated_run
    produced = load_checkpoint(out / "mlp.pt").provenance
    manifest = read_manifest(small_images)
    assert produced["torch"] == torch.__version__
    assert produced["device"] == "cpu" and produced["cpu"]
    assert produced["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert produced["threads"] == 1  # the MLP trains on one thread, whatever the cores
    digests = {s: manifest[s]["sha256"] for s in ("train", "test")}
    # every split read, the held-out part (of the training split) included
    assert produced["data_sha256"] == {**digests, "validation": digests["train"]}
    metrics = evaluate_into(out, small_images, validation=200)
    assert metrics["provenance"]["train"] == produced
    evaluated = metrics["provenance"]["evaluate"]
    assert evaluated["data_sha256"] == {"test": digests["test"], "validation": digests["train"]}
    assert evaluated["threads"] == torch.get_num_threads()
