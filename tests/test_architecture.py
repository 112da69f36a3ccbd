"""The package's layers are its folders, and imports point only down them.

Each subpackage of ``src/mnist_pipeline`` is a layer, ordered by
:data:`mnist_pipeline.tools.codegraph.LAYERS`: a module may import its own layer and the
layers below, never a sibling (the data and model sides) or a layer above. So the data
side (fetch, extract) loads no model code and no torch, and the model side (train,
evaluate, export) reaches nothing that downloads or unpickles. A new module needs no
entry anywhere: its folder says its layer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO_ROOT
from mnist_pipeline.tools.codegraph import (
    LAYERS,
    PACKAGE_DIR,
    crossings,
    import_closure,
    layer_of,
    module_graph,
    module_name,
)

SUBPACKAGES = sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))


def test_every_folder_is_a_layer_and_every_module_sits_in_one() -> None:
    layers = {
        name for entry in LAYERS for name in (entry if isinstance(entry, tuple) else (entry,))
    }
    assert set(SUBPACKAGES) == layers
    loose = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]  # the package's entry, above every layer


def test_imports_point_only_down_the_layers() -> None:
    assert crossings(module_graph()) == []


def test_an_import_across_a_boundary_is_reported() -> None:
    graph = module_graph()
    graph["model.train"].add("data.sources")  # the model side reaching the downloader
    graph["formats.png"].add("model.dataset")  # a format loading torch
    graph["core.params"].add("tools.report")  # a lower layer reaching up
    assert crossings(graph) == [
        "core.params (core) imports tools.report (tools)",
        "formats.png (formats) imports model.dataset (model)",
        "model.train (model) imports data.sources (data)",
    ]


def test_nested_modules_are_found_by_their_dotted_names(tmp_path: Path) -> None:
    package = tmp_path / "mnist_pipeline"
    (package / "model" / "nets").mkdir(parents=True)
    (package / "__init__.py").write_text('"""docstring only."""\n')
    (package / "model" / "__init__.py").write_text('"""docstring only."""\n')
    (package / "model" / "nets" / "__init__.py").write_text("REGISTRY = {}\n")
    (package / "model" / "nets" / "small.py").write_text(
        "from mnist_pipeline.model.nets import REGISTRY\n"
    )
    (package / "model" / "train.py").write_text(
        "def f():\n    from mnist_pipeline.model.nets import small\n"
    )
    graph = module_graph(package)
    assert graph["model.train"] == {"model.nets", "model.nets.small"}
    assert graph["model.nets.small"] == {"model.nets"}
    assert module_name(package / "model" / "nets" / "__init__.py", package) == "model.nets"
    assert layer_of("model.nets.small") == "model"


STAGE_LAYERS = {
    "fetch": {"core", "formats", "data"},
    "extract": {"core", "formats", "data"},
    "train": {"core", "formats", "model"},
    "evaluate": {"core", "formats", "model"},
    "export": {"core", "formats", "model"},
    "report": {"core", "tools"},
}


@pytest.mark.parametrize("stage", STAGE_LAYERS)
def test_each_stage_reaches_only_its_side(stage: str) -> None:
    """What a stage script runs, through every module it imports."""
    reached = import_closure(REPO_ROOT / "stages" / f"{stage}.py")
    assert {layer_of(module_name(path)) for path in reached} <= STAGE_LAYERS[stage]


def test_stage_scripts_are_short() -> None:
    for script in (REPO_ROOT / "stages").glob("*.py"):
        assert len(script.read_text().splitlines()) <= 50, script.name
