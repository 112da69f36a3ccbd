"""Build the draw-a-digit page into one folder that any static web server can serve.

    python web/build_page.py [--out build/web] [--root .]     (make web)

The folder holds web/'s page, each model of params.yaml as the export stage wrote it
(``models/onnx/<model>.onnx``, checked to be that model's file), ``models.json`` with each
model's test accuracy from ``metrics/<model>.json``, and onnxruntime-web's WebAssembly
build, copied from node_modules (``npm ci``), so that the page loads nothing from anywhere
else. It fails, writing nothing, when a model has no file or metrics yet (run
``dvc repro`` or ``dvc pull`` first), or when the folder would pass :data:`MAX_BYTES`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from mnist_pipeline.core.atomic import atomic_dir
from mnist_pipeline.core.entry import main_of
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import load_params
from mnist_pipeline.formats.onnxfile import open_model

log = logging.getLogger("mnist_pipeline.web")

HERE = Path(__file__).resolve().parent
PAGE = ("index.html", "page.js", "mnist_form.js", "style.css")
ORT_PACKAGE = "onnxruntime-web"
# the WebAssembly-only ES module bundle and its single binary (SIMD; run on one thread)
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
MAX_BYTES = 15_000_000  # the page, both models and the runtime


def model_entry(name: str, onnx_path: Path, metrics_path: Path) -> dict:
    """What the page shows of a model: its name, file, and test accuracy from its metrics."""
    open_model(onnx_path, expected=name)  # a missing, cut or mislabelled file stops here
    try:
        metrics = json.loads(metrics_path.read_text())
        return {
            "name": name,
            "file": f"models/{name}.onnx",
            "accuracy": float(metrics["accuracy"]),
            "test_images": int(metrics["test_images"]),
            "parameters": int(metrics["parameters"]),
        }
    except FileNotFoundError as exc:
        raise PipelineError(f"{metrics_path}: no such file (run `dvc repro` first)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{metrics_path}: no accuracy, test_images and parameters") from exc


def build_page(
    out: Path, models: dict[str, tuple[Path, Path]], node_modules: Path
) -> dict[str, int]:
    """Write the page for ``models`` (name: its ONNX file and metrics file) to ``out``.

    Returns each file's size in bytes, by its path in the folder.
    """
    entries = [model_entry(name, onnx, metrics) for name, (onnx, metrics) in models.items()]
    runtime = node_modules / ORT_PACKAGE / "dist"
    missing = [name for name in ORT_FILES if not (runtime / name).is_file()]
    if missing:
        raise PipelineError(f"{runtime}: no {', '.join(missing)}: run `npm ci` (make node-tools)")
    with atomic_dir(out) as folder:
        for name in PAGE:
            shutil.copyfile(HERE / name, folder / name)
        (folder / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(runtime / name, folder / "ort" / name)
        (folder / "models").mkdir()
        for entry, (onnx, _) in zip(entries, models.values(), strict=True):
            shutil.copyfile(onnx, folder / entry["file"])
        (folder / "models.json").write_text(json.dumps(entries, indent=2) + "\n")
        sizes = {
            path.relative_to(folder).as_posix(): path.stat().st_size
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        total = sum(sizes.values())
        if total > MAX_BYTES:
            raise PipelineError(
                f"{out}: the page would be {total:,} bytes, over its budget of {MAX_BYTES:,}"
            )
    return sizes


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/web"))
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository")
    args = parser.parse_args(argv)
    root = args.root
    names = list(load_params(root / "params.yaml").models)
    models = {
        name: (root / "models" / "onnx" / f"{name}.onnx", root / "metrics" / f"{name}.json")
        for name in names
    }
    sizes = build_page(args.out, models, root / "node_modules")
    for path, size in sizes.items():
        log.info("%s/%s: %s bytes", args.out, path, f"{size:,}")
    log.info(
        "%s: %s bytes in all (budget %s)", args.out, f"{sum(sizes.values()):,}", f"{MAX_BYTES:,}"
    )


if __name__ == "__main__":
    main_of(main)
