"""Run every benchmark and write benchmarks/RESULTS.md (``make bench``).

    python benchmarks/run_all.py [--repeats 3] [--only data train eval png pipeline]

Each figure is printed as it is measured, beside its baseline and their ratio; the
goals are ratios measured side by side in this one run, so a busy machine slows both
sides. RESULTS.md records the figures with a line about the machine and its load.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the figures

import bench_data  # noqa: E402
import bench_eval  # noqa: E402
import bench_pipeline  # noqa: E402
import bench_png  # noqa: E402
import bench_train  # noqa: E402
from benchlib import REPO_ROOT, Check, Figure, Result, bench_parser, machine_line, show  # noqa: E402
from mnist_pipeline.core.params import load_params  # noqa: E402

BENCHES = ("data", "train", "eval", "png", "pipeline")


def markdown(results: list[Result], start: str, end: str, command: str, seconds: float) -> str:
    """RESULTS.md: a table of the figures, the checks, and the machine they ran on."""
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` in {seconds / 60:.1f} min, {time.strftime('%Y-%m-%d %H:%M %Z')}.",
        "",
        f"Machine at the start: {start}",
        "",
        f"Machine at the end: {end}",
        "",
        "Ratios are measured side by side in this run. For a speed-up goal the ratio is",
        "baseline / figure; for a cost goal it is figure / baseline (or figure / limit).",
        "",
        "| goal | figure | value | baseline | baseline value | ratio | goal on ratio | verdict |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for r in results:
        if isinstance(r, Figure):
            lines.append(
                f"| {r.goal} | {r.what} | {r.value:.3f} {r.unit} | {r.baseline_what} | "
                f"{r.baseline:.3f} {r.unit} | {r.ratio:.2f}x | {r.target_text} | {r.verdict} |"
            )
    checks = [r for r in results if isinstance(r, Check)]
    if checks:
        lines += ["", "| goal | check | observed | expected | verdict |", "|---|---|---|---|---|"]
        lines += [
            f"| {c.goal} | {c.what} | {c.observed} | {c.expected} | {c.verdict} |" for c in checks
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = bench_parser(__doc__, "images", "raw", "params")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    params = load_params(args.params)
    start_line, started = machine_line(), time.perf_counter()
    print(f"machine: {start_line}", flush=True)
    results: list[Result] = []
    runs = {
        "data": lambda: bench_data.run(args.images, params.models["lenet5"], args.repeats),
        "train": lambda: bench_train.run(
            args.images, params.models, list(params.models), args.repeats
        ),
        "eval": lambda: bench_eval.run(args.images, params, args.repeats),
        "png": lambda: bench_png.run(args.images, args.raw, args.repeats),
        "pipeline": lambda: bench_pipeline.run(args.raw.resolve(), args.repeats),
    }
    for name in args.only:
        found = runs[name]()
        show(found)
        results += found
    end_line = machine_line()
    print(f"machine at the end: {end_line}", flush=True)
    command = " ".join(["python", *[Path(sys.argv[0]).as_posix(), *sys.argv[1:]]])
    if args.only != list(BENCHES):
        print(f"not writing {args.out}: only part of the benchmarks ran")
        return
    args.out.write_text(
        markdown(results, start_line, end_line, command, time.perf_counter() - started)
    )
    missed = [r for r in results if r.verdict == "MISSED"]
    print(f"wrote {args.out}; {len(missed)} goal(s) missed on {platform.node() or 'this machine'}")


if __name__ == "__main__":
    main()
