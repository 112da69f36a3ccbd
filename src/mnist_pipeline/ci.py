"""``make ci``: reproduce the pipeline, check every model's accuracy floor, write a report.

The report holds the floors, ``dvc metrics diff`` and ``dvc params diff`` against a base
revision as markdown tables, and every plot as an image. In GitHub Actions it is appended
to ``$GITHUB_STEP_SUMMARY`` (images inline); elsewhere it is written to a file (images
linked) and printed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mnist_pipeline.atomic import write_text
from mnist_pipeline.dvc_cli import dvc
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.params import load_params
from mnist_pipeline.plots import show_plots

log = logging.getLogger(__name__)

# GitHub refuses a step summary over 1 MiB: inline images only while they fit in this.
INLINE_IMAGE_BUDGET = 700_000


@dataclass(frozen=True)
class FloorCheck:
    model: str
    accuracy: float
    floor: float

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.floor

    def describe(self) -> str:
        verdict = "meets" if self.passed else "is below"
        return (
            f"{self.model}: test accuracy {self.accuracy:.4f} {verdict} its floor "
            f"{self.floor:.4f} (accuracy_floor.{self.model} in params.yaml)"
        )


def check_floors(floors: dict[str, float], metrics_dir: Path) -> list[FloorCheck]:
    """Compare ``metrics_dir/<model>.json``'s accuracy with each model's floor."""
    checks = []
    for model, floor in floors.items():
        path = metrics_dir / f"{model}.json"
        try:
            accuracy = json.loads(path.read_text())["accuracy"]
        except FileNotFoundError as exc:
            raise PipelineError(f"{path}: metrics missing (run the evaluate stage)") from exc
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise PipelineError(f"{path}: no readable 'accuracy': {exc}") from exc
        if isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
            raise PipelineError(f"{path}: 'accuracy' is {accuracy!r}, not a number")
        checks.append(FloorCheck(model, float(accuracy), floor))
    return checks


def floors_table(checks: list[FloorCheck]) -> str:
    lines = ["| model | test accuracy | floor | |", "|---|---:|---:|---|"]
    for check in checks:
        mark = "pass" if check.passed else "**FAIL**"
        lines.append(f"| {check.model} | {check.accuracy:.4f} | {check.floor:.4f} | {mark} |")
    return "\n".join(lines) + "\n"


def tidy_diff(table: str, kind: str, base: str, fold_nested: bool = False) -> str:
    """A ``dvc ... diff --md`` table, or a line saying nothing changed; with
    ``fold_nested``, rows of nested keys (per-class figures) fold under the top-level ones."""
    lines = table.strip().splitlines()
    rows = [line for line in lines if line.startswith("|")]
    if len(rows) <= 2:  # dvc prints a bare header when nothing changed
        return f"_No {kind} changed against `{base}`._\n"
    header, body = rows[:2], rows[2:]
    nested = [row for row in body if fold_nested and "." in row.split("|")[2]]
    top = [row for row in body if row not in nested]
    text = "\n".join(header + top) + "\n" if top else f"_Only nested {kind} changed._\n"
    if nested:
        text += (
            f"\n<details><summary>{len(nested)} nested {kind} changed</summary>\n\n"
            + "\n".join(header + nested)
            + "\n\n</details>\n"
        )
    return text


def diff_markdown(kind: str, base: str, cwd: Path) -> str:
    """``dvc <kind> diff <base> --md``, tidied; a note when ``base`` cannot be compared."""
    try:
        table = dvc([kind, "diff", base, "--md"], cwd=cwd)
    except PipelineError as exc:
        log.warning("%s", exc)
        return f"_Could not compare with `{base}` (is it fetched?): {exc}_\n"
    return tidy_diff(table, kind, base, fold_nested=kind == "metrics")


def image_markdown(images: list[Path], report_dir: Path | None) -> str:
    """Images as markdown: linked relative to ``report_dir``, or inline (``None``)."""
    parts, budget = [], INLINE_IMAGE_BUDGET
    for image in images:
        if report_dir is not None:
            src = os.path.relpath(image, report_dir)
        else:
            data = base64.b64encode(image.read_bytes()).decode("ascii")
            if len(data) > budget:
                parts.append(f"- {image.name}: too large to inline; see the run's artifacts\n")
                continue
            budget -= len(data)
            src = f"data:image/png;base64,{data}"
        parts.append(f"![{image.stem}]({src})\n")
    return "\n".join(parts)


def build_report(
    checks: list[FloorCheck], metrics_diff: str, params_diff: str, images_md: str, base: str
) -> str:
    verdict = "passed" if all(c.passed for c in checks) else "FAILED"
    return (
        f"# Pipeline report: accuracy floors {verdict}\n\n"
        f"{floors_table(checks)}\n"
        f"## Metrics against `{base}`\n\n{metrics_diff}\n"
        f"## Params against `{base}`\n\n{params_diff}\n"
        f"## Plots\n\n{images_md}"
    )


def has_remote(repo: Path) -> bool:
    return bool(dvc(["remote", "list"], cwd=repo).strip())


def publish(report_for_file: str, report_inline: str, report_path: Path) -> Path:
    """Append to ``$GITHUB_STEP_SUMMARY`` when set; always write ``report_path`` and print it."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(report_inline + "\n")
        log.info("appended the report to $GITHUB_STEP_SUMMARY (%s)", summary)
    write_text(report_path, report_for_file)
    sys.stdout.write(report_for_file)
    log.info("wrote %s", report_path)
    return report_path


def run_ci(repo: Path, base: str = "main", report_path: Path | None = None) -> bool:
    """Pull (with a remote), reproduce, push, draw the plots, check floors, report.

    Returns whether every model meets its floor; the report is written either way.
    """
    report_path = repo / (report_path or Path("dvc_plots/ci-report.md"))
    remote = has_remote(repo)
    if remote:
        dvc(["pull", "--allow-missing"], cwd=repo, capture=False)
    dvc(["repro"], cwd=repo, capture=False)
    if remote:
        dvc(["push"], cwd=repo, capture=False)
    images = show_plots(repo)
    params = load_params(repo / "params.yaml")
    checks = check_floors(params.accuracy_floor, repo / "metrics")
    sections = (
        checks,
        diff_markdown("metrics", base, repo),
        diff_markdown("params", base, repo),
    )
    publish(
        build_report(*sections, image_markdown(images, report_path.parent), base),
        build_report(*sections, image_markdown(images, None), base),
        report_path,
    )
    for check in checks:
        (log.info if check.passed else log.error)("%s", check.describe())
    unchecked = sorted(set(params.models) - set(params.accuracy_floor))
    if unchecked:
        log.warning("no accuracy_floor for %s: not checked", ", ".join(unchecked))
    return all(check.passed for check in checks)
