"""How long one prediction takes in the draw-a-digit page, beside the same work done natively.

    make web && python benchmarks/bench_page.py [--site build/web] [--rounds 7] [--repeats 50]

One prediction is what the page does after each stroke: read the pad (280 x 280), bring
the drawing to MNIST's form, run both models, show the bars. The page runs in the system's
headless Chromium with onnxruntime-web (WebAssembly, one thread), timed inside the page
(``performance.now``); the drawing is a real test digit replayed as pen strokes. The
baseline is the same work natively, in this Python: ``predict.to_mnist`` on the pad's ink,
then onnxruntime (one thread) on each model file of the page. Rounds alternate between
the two, ``--repeats`` predictions each; it prints each step's median over all rounds and
the spread of the round medians, with the CPU, and whether the page's whole prediction
stays under the goal of :data:`GOAL_MS`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "web"))

from page_driver import PageDriver, find_chromium, png_bytes, scanline_strokes  # noqa: E402

from mnist_pipeline.formats.onnxfile import open_model  # noqa: E402
from mnist_pipeline.model.dataset import DigitFolder  # noqa: E402
from mnist_pipeline.model.runtime import cpu_name  # noqa: E402
from mnist_pipeline.tools.predict import to_mnist  # noqa: E402

GOAL_MS = 20.0
DIGITS = (REPO_ROOT / "data" / "images" / "test", REPO_ROOT / "tests" / "data" / "mnist-small")


def test_digit() -> np.ndarray:
    """The first digit of MNIST's test split (the extracted images, else the tests' slice)."""
    if DIGITS[0].is_dir():
        return DigitFolder.read(DIGITS[0]).images[0, 0].numpy()
    from mnist_pipeline.data.sources import from_directory

    return from_directory(DIGITS[1])["test"][0][0]


def native_round(ink: np.ndarray, models: dict, repeats: int) -> dict[str, list[float]]:
    """``repeats`` native predictions of ``ink``: each step's milliseconds."""
    steps: dict[str, list[float]] = {"preprocess": [], "total": [], **{m: [] for m in models}}
    for _ in range(repeats):
        start = time.perf_counter()
        form = to_mnist(ink, "pad")[None, None]
        steps["preprocess"].append((time.perf_counter() - start) * 1000)
        for name, model in models.items():
            began = time.perf_counter()
            model.logits(form)
            steps[name].append((time.perf_counter() - began) * 1000)
        steps["total"].append((time.perf_counter() - start) * 1000)
    return steps


def page_round(page: PageDriver, names: list[str], repeats: int) -> dict[str, list[float]]:
    runs = page.ask("time", repeats=repeats)["timings"]
    steps = {"preprocess": [r["preprocess"] for r in runs], "total": [r["total"] for r in runs]}
    return {**steps, **{name: [r["models"][name] for r in runs] for name in names}}


def summary(rounds: list[dict[str, list[float]]], step: str) -> tuple[float, float, float]:
    """The median of every prediction's time for ``step``, and the lowest and highest of the
    rounds' medians."""
    medians = [statistics.median(r[step]) for r in rounds]
    return statistics.median([t for r in rounds for t in r[step]]), min(medians), max(medians)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=REPO_ROOT / "build" / "web")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    entries = json.loads((args.site / "models.json").read_text())
    names = [entry["name"] for entry in entries]
    models = {e["name"]: open_model(args.site / e["file"], e["name"], threads=1) for e in entries}
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium: `make chromium` installs it", file=sys.stderr)
        return 1
    with PageDriver(args.site, chromium) as page:
        drawn = page.ask("draw", strokes=scanline_strokes(test_digit(), 10, (0, 0)))
        if drawn.get("error") or drawn["problems"]:
            print(f"the page failed: {drawn}", file=sys.stderr)
            return 1
        pad = Image.open(io.BytesIO(png_bytes(drawn["png"])))
        ink = np.asarray(pad.convert("RGBA"), dtype=np.float64)[:, :, 3]  # the page's ink
        page_rounds, native_rounds = [], []
        for _ in range(args.rounds):
            page_rounds.append(page_round(page, names, args.repeats))
            native_rounds.append(native_round(ink, models, args.repeats))
        browser = page.ready["chromium"]
    ort_web = json.loads((REPO_ROOT / "node_modules/onnxruntime-web/package.json").read_text())
    import onnxruntime

    print(
        f"One prediction of a drawn digit (the pad, 280x280, to both models' probabilities), "
        f"median over {args.rounds} interleaved rounds of {args.repeats}; "
        f"spread: the lowest and highest round median. CPU: {cpu_name()}."
    )
    print(
        f"Page: Chromium {browser} headless, onnxruntime-web {ort_web['version']} "
        f"(WebAssembly, 1 thread). Baseline: this Python, predict.to_mnist and onnxruntime "
        f"{onnxruntime.__version__} (1 thread)."
    )
    print("\n| step | page, ms | spread | native, ms | spread |\n|---|---|---|---|---|")
    for step in ["preprocess", *names, "total"]:
        page_ms, native_ms = summary(page_rounds, step), summary(native_rounds, step)
        label = {"preprocess": "MNIST form", "total": "whole prediction"}.get(step, step)
        print(
            f"| {label} | {page_ms[0]:.2f} | {page_ms[1]:.2f}-{page_ms[2]:.2f} | "
            f"{native_ms[0]:.2f} | {native_ms[1]:.2f}-{native_ms[2]:.2f} |"
        )
    whole, low, high = summary(page_rounds, "total")
    verdict = "met" if high < GOAL_MS else "not met" if low >= GOAL_MS else "inconclusive"
    print(
        f"\ngoal: a whole prediction in the page under {GOAL_MS:g} ms: {verdict} ({whole:.2f} ms)"
    )
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
