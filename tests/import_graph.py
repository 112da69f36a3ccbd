"""The project modules a script imports, read from its code: every ``mnist_pipeline`` import,
at module level or inside a function, followed through the modules it reaches."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "mnist_pipeline"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / PACKAGE


def _imported_modules(source: Path) -> set[str]:
    """Dotted names of the package's modules that ``source`` imports anywhere in its code."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # `from mnist_pipeline import train` imports the module mnist_pipeline.train
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The file of module ``name``; None for a name that is an attribute, not a module."""
    parts = name.split(".")[1:]
    if not parts:
        return package_dir / "__init__.py"
    path = package_dir.joinpath(*parts).with_suffix(".py")
    return path if path.is_file() else None


def _has_code(init: Path) -> bool:
    """Whether a package ``__init__.py`` holds more than a docstring."""
    body = ast.parse(init.read_text()).body
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body
    )


def import_closure(script: Path, package_dir: Path = PACKAGE_DIR) -> set[Path]:
    """Every module file of the package that running ``script`` can import."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in _imported_modules(todo.pop()):
            path = _module_file(name, package_dir)
            if path is None:
                parent = name.rsplit(".", 1)[0]
                if parent == PACKAGE or _module_file(parent, package_dir) is not None:
                    continue  # `from mnist_pipeline.x import some_function`
                raise FileNotFoundError(f"{script}: imports {name}, which has no module file")
            if path not in seen:
                seen.add(path)
                todo.append(path)
    init = package_dir / "__init__.py"
    if init in seen and not _has_code(init):
        seen.discard(init)  # a docstring-only __init__ changes nothing a stage computes
    return seen


def stage_code_deps(cmd: str, deps: list[str], root: Path) -> tuple[list[str], list[str]]:
    """For a ``python stages/x.py ...`` stage: package modules missing from ``deps``, and
    package modules listed in ``deps`` that the script never imports (paths from ``root``)."""
    script = root / cmd.split()[1]
    closure = {str(p.relative_to(root)) for p in import_closure(script, root / "src" / PACKAGE)}
    listed = {d for d in deps if d.startswith(f"src/{PACKAGE}/")}
    return sorted(closure - listed), sorted(listed - closure)


def module_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Each module of the package (by file stem) and the package modules it imports."""
    graph = {}
    for path in sorted(package_dir.glob("*.py")):
        if path.name == "__init__.py":
            continue
        targets = {_module_file(name, package_dir) for name in _imported_modules(path)}
        graph[path.stem] = {t.stem for t in targets if t is not None and t.name != "__init__.py"}
    return graph


def mermaid(graph: dict[str, set[str]], layers: dict[str, list[str]], core: str) -> str:
    """``graph`` as a mermaid flowchart: one box per layer, an arrow per import, except
    imports of the ``core`` layer's modules, which every layer may use."""
    lines = ["flowchart TB"]
    for layer, modules in layers.items():
        lines.append(f"  subgraph {layer}")
        lines += [f"    {_node(m)}" + (f'["{m}"]' if _node(m) != m else "") for m in modules]
        lines.append("  end")
    core_modules = set(layers[core])
    for module in [m for modules in layers.values() for m in modules]:
        for target in sorted(graph[module] - core_modules):
            lines.append(f"  {_node(module)} --> {_node(target)}")
    return "\n".join(lines) + "\n"


def _node(module: str) -> str:
    """A mermaid node id: ``__main__`` is not one."""
    return module.strip("_") or module


if __name__ == "__main__":
    from test_architecture import CORE, LAYERS

    print(mermaid(module_graph(), LAYERS, CORE), end="")
