"""The package's layers point one way, and the README's import graph is the code's.

Every module belongs to one layer; a layer may import only the layers listed for it. So
the data side (fetch, extract) loads no model code and no torch, and the model side
(train, evaluate, export) reaches nothing that downloads or unpickles. A new module must
be given a layer here; an import across a boundary fails
:func:`test_imports_point_only_to_allowed_layers`.
"""

from __future__ import annotations

import re

import pytest

from conftest import REPO_ROOT
from import_graph import PACKAGE_DIR, import_closure, mermaid, module_graph

CORE = "core"
LAYERS = {
    # what every layer may use: no torch, no network, no files of its own
    CORE: ["errors", "atomic", "mnist", "params", "cli"],
    # the files both sides read: PNG digits, the images' manifest, exported ONNX models
    "formats": ["png", "manifest", "onnxfile"],
    # MNIST from its sources into tarballs and image folders: downloads, unpickles
    "data": ["idx", "archive", "sources", "fetch", "extract"],
    # torch: the models, reading the image folders, training, evaluation, export
    "model": [
        "models",
        "runtime",
        "dataset",
        "transforms",
        "batching",
        "inference",
        "history",
        "checkpoint",
        "resume",
        "train",
        "evaluate",
        "export",
    ],
    # what runs around the pipeline: the report, plots, CI, sweeps, the command line
    "tools": [
        "report",
        "plots",
        "dvc_cli",
        "ci_remote",
        "pr_comment",
        "ci",
        "sweep",
        "predict",
        "__main__",
    ],
}
ALLOWED = {
    CORE: {CORE},
    "formats": {CORE, "formats"},
    "data": {CORE, "formats", "data"},
    "model": {CORE, "formats", "model"},
    "tools": {CORE, "formats", "model", "tools"},
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}
GRAPH_BLOCK = re.compile(r"<!-- import-graph -->\n```mermaid\n(.*?)```\n", re.DOTALL)


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` from a layer to one it may not use."""
    return [
        f"{module} ({LAYER_OF[module]}) imports {target} ({LAYER_OF[target]})"
        for module, targets in graph.items()
        for target in sorted(targets)
        if LAYER_OF[target] not in ALLOWED[LAYER_OF[module]]
    ]


def test_every_module_has_a_layer() -> None:
    assert sorted(module_graph()) == sorted(LAYER_OF)


def test_imports_point_only_to_allowed_layers() -> None:
    assert crossings(module_graph()) == []


def test_an_import_across_a_boundary_is_reported() -> None:
    graph = module_graph()
    graph["train"].add("sources")  # the model side reaching the downloader
    graph["png"].add("dataset")  # a format loading torch
    assert crossings(graph) == [
        "png (formats) imports dataset (model)",
        "train (model) imports sources (data)",
    ]


@pytest.mark.parametrize(
    ("stage", "layers"),
    [
        ("fetch", {CORE, "formats", "data"}),
        ("extract", {CORE, "formats", "data"}),
        ("train", {CORE, "formats", "model"}),
        ("evaluate", {CORE, "formats", "model"}),
        ("export", {CORE, "formats", "model"}),
        ("report", {CORE, "tools"}),
    ],
)
def test_each_stage_reaches_only_its_side(stage: str, layers: set[str]) -> None:
    """What a stage script runs, through every module it imports."""
    reached = import_closure(REPO_ROOT / "stages" / f"{stage}.py", PACKAGE_DIR)
    assert {LAYER_OF[path.stem] for path in reached} <= layers


def test_the_model_side_reaches_no_downloader_and_the_data_side_no_model_code() -> None:
    reached = {
        stage: {path.stem for path in import_closure(REPO_ROOT / "stages" / f"{stage}.py")}
        for stage in ("fetch", "extract", "train", "evaluate", "export")
    }
    for stage in ("train", "evaluate", "export"):
        assert not reached[stage] & {"sources", "fetch", "idx", "archive"}, stage
    for stage in ("fetch", "extract"):
        assert not reached[stage] & {"models", "runtime", "dataset", "checkpoint"}, stage


def test_the_readme_draws_the_import_graph_of_the_code() -> None:
    drawn = GRAPH_BLOCK.search((REPO_ROOT / "README.md").read_text())
    assert drawn is not None, "README.md has no <!-- import-graph --> mermaid block"
    expected = mermaid(module_graph(), LAYERS, CORE)
    assert drawn.group(1) == expected, (
        "README.md's import graph is out of date: replace its mermaid block with the "
        "output of `python tests/import_graph.py`"
    )
