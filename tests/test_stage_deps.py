"""Every stage depends on all the project code it runs, so `dvc status` cannot miss a change.

The import closure of each stage's entry script is read from the code (every
``import mnist_pipeline...`` and ``from mnist_pipeline... import``, at module level or
inside a function), and compared with the stage's deps in dvc.yaml.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO_ROOT
from import_graph import PACKAGE_DIR, import_closure, stage_code_deps

DVC_YAML = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())


def stages(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's definition; a foreach/matrix stage's ``do`` block stands for all of it."""
    return {name: stage.get("do", stage) for name, stage in dvc_yaml["stages"].items()}


def mismatches(dvc_yaml: dict) -> list[str]:
    problems = []
    for name, stage in stages(dvc_yaml).items():
        missing, extra = stage_code_deps(stage["cmd"], stage.get("deps", []), REPO_ROOT)
        problems += [f"{name}: imports {path} but does not list it in deps" for path in missing]
        problems += [f"{name}: lists {path} in deps but never imports it" for path in extra]
    return problems


def test_every_stage_lists_exactly_the_project_modules_it_imports() -> None:
    assert mismatches(DVC_YAML) == []


def test_a_dep_removed_from_dvc_yaml_is_reported() -> None:
    for name, stage in stages(DVC_YAML).items():
        module_deps = [d for d in stage["deps"] if d.startswith("src/")]
        assert module_deps, name
        broken = copy.deepcopy(DVC_YAML)
        broken_stage = broken["stages"][name].get("do", broken["stages"][name])
        broken_stage["deps"].remove(module_deps[-1])
        assert mismatches(broken) == [
            f"{name}: imports {module_deps[-1]} but does not list it in deps"
        ]


def test_lazy_imports_inside_functions_count(tmp_path) -> None:
    package = tmp_path / "src" / "mnist_pipeline"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""docstring only: not counted."""\n')
    (package / "top.py").write_text("def f():\n    from mnist_pipeline import lazy\n")
    (package / "lazy.py").write_text("import mnist_pipeline.leaf as leaf\n")
    (package / "leaf.py").write_text("")
    (tmp_path / "entry.py").write_text("import os\nfrom mnist_pipeline.top import f\n")
    closure = import_closure(tmp_path / "entry.py", package)
    assert sorted(p.name for p in closure) == ["lazy.py", "leaf.py", "top.py"]


def test_an_import_of_a_missing_module_is_an_error(tmp_path) -> None:
    (tmp_path / "entry.py").write_text("from mnist_pipeline.no_such_module import x\n")
    with pytest.raises(FileNotFoundError, match="no_such_module"):
        import_closure(tmp_path / "entry.py", PACKAGE_DIR)
