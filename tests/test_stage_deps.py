"""Every stage depends on all the project code it runs, so `dvc status` cannot miss a change.

The import closure of each stage's script is read from the code (every ``import
mnist_pipeline...`` and ``from mnist_pipeline... import``, at module level or inside a
function), and ``dvc.yaml``'s code deps are generated from it:
``python -m mnist_pipeline.tools.codegraph --write``.
"""

from __future__ import annotations

import re

import pytest

from helpers import REPO_ROOT
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.tools import codegraph

DVC_YAML = (REPO_ROOT / "dvc.yaml").read_text()


def test_dvc_yaml_code_deps_are_current() -> None:
    assert codegraph.rewrite_code_deps(DVC_YAML) == DVC_YAML, (
        "dvc.yaml's code deps are stale: run python -m mnist_pipeline.tools.codegraph --write"
    )


def test_a_removed_or_extra_code_dep_is_put_right() -> None:
    lines = DVC_YAML.splitlines(keepends=True)
    removed = next(i for i, line in enumerate(lines) if "model/train.py" in line)
    broken = "".join(lines[:removed] + lines[removed + 1 :])
    extra = DVC_YAML.replace(
        "      - stages/fetch.py\n",
        "      - stages/fetch.py\n      - src/mnist_pipeline/model/train.py\n",
    )
    for stale in (broken, extra):
        assert stale != DVC_YAML
        assert codegraph.rewrite_code_deps(stale) == DVC_YAML


def test_per_model_stages_depend_on_their_own_network_only() -> None:
    for stage in ("train", "evaluate", "export"):
        deps = codegraph.code_deps(f"stages/{stage}.py")
        nets = [dep for dep in deps if "/model/nets/" in dep]
        assert nets == ["src/mnist_pipeline/model/nets/__init__.py", codegraph.PER_MODEL_NET]
    for stage in ("fetch", "extract", "report"):
        assert not any("/model/" in dep for dep in codegraph.code_deps(f"stages/{stage}.py"))


def test_lazy_imports_inside_functions_count(tmp_path) -> None:
    package = tmp_path / "src" / "mnist_pipeline"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""docstring only: not counted."""\n')
    (package / "top.py").write_text("def f():\n    from mnist_pipeline import lazy\n")
    (package / "lazy.py").write_text("import mnist_pipeline.leaf as leaf\n")
    (package / "leaf.py").write_text("")
    (tmp_path / "entry.py").write_text("import os\nfrom mnist_pipeline.top import f\n")
    closure = codegraph.import_closure(tmp_path / "entry.py", package)
    assert sorted(p.name for p in closure) == ["lazy.py", "leaf.py", "top.py"]


def test_an_import_of_a_missing_module_is_an_error(tmp_path) -> None:
    (tmp_path / "entry.py").write_text("from mnist_pipeline.no_such_module import x\n")
    with pytest.raises(FileNotFoundError, match="no_such_module"):
        codegraph.import_closure(tmp_path / "entry.py")


def test_the_check_command_fails_on_stale_deps(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    root = tmp_path / "repo"
    (root / "stages").mkdir(parents=True)
    (root / "src").symlink_to(REPO_ROOT / "src")
    (root / "stages" / "fetch.py").write_text((REPO_ROOT / "stages" / "fetch.py").read_text())
    (root / "dvc.yaml").write_text("stages:\n  fetch:\n    deps:\n      - stages/fetch.py\n")
    monkeypatch.setattr(codegraph, "REPO_ROOT", root)
    with pytest.raises(PipelineError, match="stale code deps"):
        codegraph.main(["--check"])
    codegraph.main(["--write"])
    assert re.search(r"- src/mnist_pipeline/data/fetch.py\n", (root / "dvc.yaml").read_text())
    codegraph.main(["--check"])
