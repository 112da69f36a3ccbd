"""The package's import graph, read from the code, and the two things derived from it.

- **Layers.** Each subpackage is a layer; :data:`LAYERS` orders them, lowest first. A
  module may import modules of its own layer and of lower ones, never of a sibling or a
  higher layer (:func:`crossings`).
- **Stage code deps.** Each stage in ``dvc.yaml`` depends on exactly the modules its
  script imports, directly or through other modules, at module level or inside a
  function (:func:`import_closure`). Networks are loaded by name, so a per-model stage
  depends on ``model/nets/${key}.py``, its own network, instead of all of them.

    python -m mnist_pipeline.tools.codegraph            # the layers as a mermaid graph
    python -m mnist_pipeline.tools.codegraph --write    # rewrite dvc.yaml's code deps
    python -m mnist_pipeline.tools.codegraph --check    # exit 1 if dvc.yaml's are stale
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from mnist_pipeline.core.atomic import write_text
from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.errors import PipelineError

PACKAGE = "mnist_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parents[1]
# lowest first; a tuple holds sibling layers, which may not import each other
LAYERS: tuple[str | tuple[str, ...], ...] = ("core", "formats", ("data", "model"), "tools", "ci")
ENTRY = "entry"  # the package's own __init__ and __main__: above every layer
NETS = "model.nets"  # loaded by name (importlib): each per-model stage gets its own module
PER_MODEL_NET = f"src/{PACKAGE}/model/nets/${{key}}.py"


def rank(layer: str) -> int:
    """``layer``'s height: 0 for the lowest; the entry modules above all."""
    for height, entry in enumerate(LAYERS):
        if layer == entry or (isinstance(entry, tuple) and layer in entry):
            return height
    if layer == ENTRY:
        return len(LAYERS)
    raise PipelineError(f"'{layer}' is no layer: add the subpackage to LAYERS in {__name__}")


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """The dotted name of a module file, relative to the package: ``model.nets.lenet5``."""
    parts = list(path.relative_to(package_dir).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """A module's layer: its top-level subpackage, or :data:`ENTRY` for the package's own."""
    top = module.split(".")[0]
    return ENTRY if module in ("", "__main__") else top


def _imported_names(source: Path) -> set[str]:
    """Dotted names (without the package) that ``source`` imports from the package."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from mnist_pipeline.model import train` imports the module ...model.train
            found = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        names |= {name for name in found if name == PACKAGE or name.startswith(f"{PACKAGE}.")}
    return {name.removeprefix(PACKAGE).lstrip(".") for name in names}


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of module ``name`` (dotted, without the package); None for an attribute."""
    base = package_dir.joinpath(*name.split(".")) if name else package_dir
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    path = base.with_suffix(".py")
    return path if name and path.is_file() else None


def imports_of(source: Path, package_dir: Path = PACKAGE_DIR) -> set[Path]:
    """The package's module files ``source`` imports, with the packages above each."""
    files = set()
    for name in _imported_names(source):
        path = module_file(name, package_dir)
        if path is None:
            parent = name.rpartition(".")[0]
            if module_file(parent, package_dir) is None:
                raise FileNotFoundError(f"{source}: imports {PACKAGE}.{name}: no module file")
            continue  # `from mnist_pipeline.x import some_function`
        files.add(path)
        parts = name.split(".")  # importing a.b.c runs a/__init__ and a/b/__init__ first
        for depth in range(len(parts)):
            package = module_file(".".join(parts[:depth]), package_dir)
            if package is not None and package.name == "__init__.py":
                files.add(package)
    return files


def _has_code(init: Path) -> bool:
    """Whether a package ``__init__.py`` holds more than a docstring."""
    body = ast.parse(init.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def import_closure(script: Path, package_dir: Path = PACKAGE_DIR) -> set[Path]:
    """Every module file of the package that running ``script`` can import.

    A docstring-only ``__init__.py`` changes nothing a stage computes and is left out.
    """
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for path in imports_of(todo.pop(), package_dir):
            if path not in seen:
                seen.add(path)
                todo.append(path)
    return {p for p in seen if p.name != "__init__.py" or _has_code(p)}


def module_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Each module of the package (dotted) and the package modules it imports."""
    graph = {}
    for path in sorted(package_dir.rglob("*.py")):
        if path.name == "__init__.py" and not _has_code(path):
            continue
        targets = {module_name(t, package_dir) for t in imports_of(path, package_dir)}
        graph[module_name(path, package_dir)] = {
            t for t in targets if _has_code_file(t, package_dir)
        }
    return graph


def _has_code_file(name: str, package_dir: Path) -> bool:
    path = module_file(name, package_dir)
    return path is not None and (path.name != "__init__.py" or _has_code(path))


def crossings(graph: dict[str, set[str]]) -> list[str]:
    """Every import in ``graph`` to a sibling or a higher layer."""
    found = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module)
        for target in sorted(targets):
            to = layer_of(target)
            if to != source and rank(to) >= rank(source):
                found.append(f"{module} ({source}) imports {target} ({to})")
    return found


def mermaid(graph: dict[str, set[str]]) -> str:
    """``graph`` as a mermaid flowchart: a box per layer, an arrow per import between two
    modules of different layers, except imports of ``core``, which every layer uses."""
    lines = ["flowchart TB"]
    layers = [
        name
        for entry in reversed(LAYERS)
        for name in (entry if isinstance(entry, tuple) else (entry,))
    ]
    for layer in layers:
        lines.append(f"  subgraph {layer}")
        lines += [
            f'    {_node(m)}["{m.split(".", 1)[1]}"]' for m in sorted(graph) if layer_of(m) == layer
        ]
        lines.append("  end")
    for module in sorted(graph):
        for target in sorted(graph[module]):
            if layer_of(target) not in ("core", layer_of(module)) and layer_of(module) != ENTRY:
                lines.append(f"  {_node(module)} --> {_node(target)}")
    return "\n".join(lines) + "\n"


def _node(module: str) -> str:
    return module.replace(".", "_")


# --- dvc.yaml's code deps --------------------------------------------------------------

CODE_DEP = re.compile(rf"^(\s+)- (?:stages/\S+\.py|src/{PACKAGE}/\S+\.py)\s*$")
SCRIPT_DEP = re.compile(r"^(\s+)- (stages/\S+\.py)\s*$")


def code_deps(script: str, root: Path = REPO_ROOT) -> list[str]:
    """A stage's code deps: its script, then every module it imports, sorted; a per-model
    stage's network as ``model/nets/${key}.py``."""
    package_dir = root / "src" / PACKAGE
    closure = import_closure(root / script, package_dir)
    nets_dir = package_dir / "model" / "nets"
    modules = sorted(
        f"src/{PACKAGE}/{p.relative_to(package_dir).as_posix()}"
        for p in closure
        if p.parent != nets_dir or p.name == "__init__.py"
    )
    if nets_dir / "__init__.py" in closure:
        modules.append(PER_MODEL_NET)
    return [script, *modules]


def rewrite_code_deps(text: str, root: Path = REPO_ROOT) -> str:
    """``dvc.yaml``'s text with each stage's run of code deps (its script, then modules)
    replaced by :func:`code_deps`; everything else, comments included, kept."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        script = SCRIPT_DEP.match(lines[i])
        if script is None:
            out.append(lines[i])
            i += 1
            continue
        indent = script.group(1)
        out += [f"{indent}- {dep}\n" for dep in code_deps(script.group(2), root)]
        i += 1
        while i < len(lines) and CODE_DEP.match(lines[i]):
            i += 1
    return "".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    action.add_argument("--check", action="store_true", help="exit 1 if they are stale")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(mermaid(module_graph()))
        return 0
    path = REPO_ROOT / "dvc.yaml"
    current = path.read_text()
    wanted = rewrite_code_deps(current)
    if args.write and wanted != current:
        write_text(path, wanted)
    if args.check and wanted != current:
        raise PipelineError(f"{path}: stale code deps; run: python -m {__name__} --write")
    return 0


if __name__ == "__main__":
    main_of(main)
