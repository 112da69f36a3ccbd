"""Train both models over several seeds with a recipe; print test accuracy and wall time.

Usage, from the repository root (needs the extracted images under ``data/images``)::

    python scripts/seeds.py                      # the params.yaml recipe, seeds 0 1 2
    python scripts/seeds.py --seeds 5            # seeds 0..4
    python scripts/seeds.py --preset reference   # params/reference.yaml over params.yaml
    python scripts/seeds.py --params other.yaml --models lenet5
    python scripts/seeds.py --validation 10000 --models mlp --set models.mlp.net.deskew=false

It runs the pipeline's own training code (``mnist_pipeline.model.train.train_model``) on the
60,000 training images, with each model's ``seed`` replaced by 0, 1, ..., N-1 (shifted by
``--first-seed``), and reads the test accuracy after the last epoch, as the train and
evaluate stages do. The test split only measures: it chooses nothing. With
``--validation N`` the last N training digits are held out, as ``data.validation`` does
in the pipeline, and their accuracy is printed too: that is the figure to choose a recipe
on. Per model it prints each seed's accuracy, the mean ± sample standard deviation and
the training wall time; then the wall time of one seed of all models, which is what the
train stages of one ``dvc repro`` cost (plus process start and image decoding, printed
separately), and the CPU it ran on.

A preset (``params/<name>.yaml``) holds only the keys it changes; they are merged into
``--params`` key by key before the usual validation; then each ``--set KEY=VALUE``
(applied by DVC's own code, so each means what it means to ``dvc exp run -S``).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from dvc.utils.hydra import apply_overrides

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import Params, parse_params, read_yaml
from mnist_pipeline.model.dataset import read_splits
from mnist_pipeline.model.runtime import cpu_name
from mnist_pipeline.model.train import train_model

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ROOT / "params"


def merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: mappings merge key by key, anything else replaces."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return override


def load_recipe(params_file: Path, preset: str | None, sets: Sequence[str] = ()) -> Params:
    """``params_file``, with ``params/<preset>.yaml`` and then ``sets`` merged over it,
    validated."""
    raw = read_yaml(params_file)
    source = str(params_file)
    if preset is not None:
        preset_file = PRESETS / f"{preset}.yaml"
        if not preset_file.is_file():
            known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml"))) or "none"
            raise PipelineError(
                f"unknown preset '{preset}' ({preset_file} missing; known: {known})"
            )
        raw = merge(raw, read_yaml(preset_file))
        source = f"{params_file} + {preset_file}"
    if sets:  # through DVC's own parser, so each means what it means to `dvc exp run -S`
        with tempfile.TemporaryDirectory() as tmp:
            edited = Path(tmp) / "params.yaml"
            edited.write_text(yaml.safe_dump(raw, sort_keys=False))
            try:
                apply_overrides(edited, list(sets))
            except Exception as exc:  # Hydra's grammar errors have no common base here
                raise PipelineError(f"--set {' '.join(sets)}: {exc}") from exc
            raw = read_yaml(edited)
        source += "".join(f" + {assignment}" for assignment in sets)
    try:
        return parse_params(raw)
    except PipelineError as exc:
        raise PipelineError(f"{source}: {exc}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds to train (3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds start here (0)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="params file")
    parser.add_argument("--preset", help="merge params/<PRESET>.yaml over --params")
    parser.add_argument("--models", nargs="+", help="models to train (all in the params)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override one param"
    )
    parser.add_argument(
        "--validation", type=int, help="hold out the last N training digits (data.validation)"
    )
    parser.add_argument("--images", type=Path, default=ROOT / "data" / "images")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.seeds < 1 or args.first_seed < 0:
        raise SystemExit("--seeds must be at least 1 and --first-seed at least 0")
    sets = [*args.set, *([f"data.validation={args.validation}"] if args.validation else [])]
    params = load_recipe(args.params, args.preset, sets)
    validation = params.data.validation
    names = args.models or list(params.models)
    for name in names:
        if name not in params.models:
            known = ", ".join(params.models)
            raise SystemExit(f"no model '{name}' under 'models' (known: {known})")

    start = time.perf_counter()
    splits = read_splits(args.images, validation)
    train_set, test_set, validation_set = splits
    decode = time.perf_counter() - start
    recipe = f"{args.params}" + (f" + preset {args.preset}" if args.preset else "")
    recipe += "".join(f" + {assignment}" for assignment in sets)
    held_out = f" / {validation} validation" if validation else ""
    print(f"recipe: {recipe}; {len(train_set)} train{held_out} / {len(test_set)} test images")
    print(f"image decoding: {decode:.1f} s")

    accuracy: dict[str, list[float]] = {name: [] for name in names}
    on_validation: dict[str, list[float]] = {name: [] for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        for name in names:
            recipe_seed = params.models[name].model_copy(update={"seed": seed})
            began, cpu_began = time.perf_counter(), time.process_time()
            _, history = train_model(name, recipe_seed, splits)
            seconds[name].append(time.perf_counter() - began)
            cpu = time.process_time() - cpu_began
            accuracy[name].append(history[-1].test_accuracy * 100)
            measured = f"test accuracy {accuracy[name][-1]:.2f} %"
            if validation_set is not None:
                on_validation[name].append(history[-1].validation_accuracy * 100)
                measured = f"validation accuracy {on_validation[name][-1]:.2f} %, " + measured
            print(
                f"{name} seed {seed}: {measured}, "
                f"{recipe_seed.epochs} epochs in {seconds[name][-1]:.1f} s "
                f"(CPU time {cpu:.1f} s over {torch.get_num_threads()} threads)",
                flush=True,
            )

    seed_cols = " | ".join(f"seed {s}" for s in seeds)
    tables = {"test": accuracy, **({"validation": on_validation} if validation_set else {})}
    for split, table in tables.items():
        print(f"\n{split} accuracy (%):")
        print(f"| model | epochs | {seed_cols} | mean ± std | train s/seed |")
        print("|---|---:|" + "---:|" * args.seeds + "---:|---:|")
        for name in names:
            accs = table[name]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            cells = " | ".join(f"{a:.2f}" for a in accs)
            print(
                f"| {name} | {params.models[name].epochs} | {cells} | "
                f"{statistics.mean(accs):.2f} ± {std:.2f} | {statistics.mean(seconds[name]):.1f} |"
            )
    per_seed = [sum(seconds[name][i] for name in names) for i in range(args.seeds)]
    print()
    print(
        "wall time of one seed, all models (training with per-epoch test evaluation): "
        + ", ".join(f"{t:.1f} s" for t in per_seed)
        + f"; mean {statistics.mean(per_seed):.1f} s"
    )
    print(f"total wall time: {time.perf_counter() - start:.1f} s")
    capability = torch.backends.cpu.get_cpu_capability()
    print(f"CPU: {cpu_name()} ({capability}), torch {torch.__version__}, {time.strftime('%F')}")


if __name__ == "__main__":
    try:
        main()
    except PipelineError as exc:
        raise SystemExit(str(exc)) from None
