"""``make ci``: reproduce the pipeline, check every model's accuracy floor, write a report.

The report holds the floors, what was pulled from and pushed to the DVC remote and why,
``dvc metrics diff`` and ``dvc params diff`` against a base revision as markdown tables,
and the plots. Two versions are written: ``dvc_plots/ci-report.md`` shows the PNGs beside
it (for a local run, or the downloaded artifact); ``dvc_plots/ci-summary.md`` links them in
the run's ``pipeline-report`` artifact, since GitHub shows no image a job summary or a
comment embeds as a ``data:`` URI. In GitHub Actions the second is appended to
``$GITHUB_STEP_SUMMARY`` and becomes the pull request's comment (:mod:`.pr_comment`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mnist_pipeline.ci.comment import run_url
from mnist_pipeline.ci.remote import CiEvent, RemotePlan, plan_remote
from mnist_pipeline.core.atomic import write_text
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import load_params
from mnist_pipeline.tools.dvc_cli import dvc
from mnist_pipeline.tools.plots import show_plots

log = logging.getLogger(__name__)

REPORT = Path("dvc_plots/ci-report.md")
SUMMARY = Path("dvc_plots/ci-summary.md")
ARTIFACT = "pipeline-report"  # the workflow uploads dvc_plots/ under this name


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


def image_markdown(images: list[Path], report_dir: Path) -> str:
    """Images as markdown, linked relative to ``report_dir`` (the report's folder)."""
    return "\n".join(f"![{image.stem}]({os.path.relpath(image, report_dir)})\n" for image in images)


def image_links(images: list[Path], plots_dir: Path, run_url: str | None) -> str:
    """The plots as a list of their paths in the run's artifact, which ``run_url`` links."""
    where = f"[this run]({run_url})" if run_url else "this run"
    lines = [
        f"Every plot is a PNG in the `{ARTIFACT}` artifact of {where}"
        " (`index.html` draws the interactive ones offline):\n"
    ]
    lines += [f"- `{os.path.relpath(image, plots_dir)}`" for image in images]
    return "\n".join(lines) + "\n"


def base_revision(event: CiEvent, environ: Mapping[str, str] | None = None) -> str:
    """What to diff against: a pull request's base branch, else the default branch; in GitHub
    Actions as ``origin/<branch>``, the only ref a checkout of a pull request has for it."""
    env = os.environ if environ is None else environ
    branch = env.get("GITHUB_BASE_REF") or event.default_branch
    return f"origin/{branch}" if env.get("GITHUB_ACTIONS") == "true" else branch


def build_report(
    checks: list[FloorCheck],
    metrics_diff: str,
    params_diff: str,
    images_md: str,
    base: str,
    plan: RemotePlan,
) -> str:
    verdict = "passed" if all(c.passed for c in checks) else "FAILED"
    return (
        f"# Pipeline report: accuracy floors {verdict}\n\n"
        f"{floors_table(checks)}\n"
        f"DVC remote: {plan.reason}.\n\n"
        f"## Metrics against `{base}`\n\n{metrics_diff}\n"
        f"## Params against `{base}`\n\n{params_diff}\n"
        f"## Plots\n\n{images_md}"
    )


def has_remote(repo: Path) -> bool:
    return bool(dvc(["remote", "list"], cwd=repo).strip())


def publish(report: str, summary: str, repo: Path) -> tuple[Path, Path]:
    """Write the report (:data:`REPORT`, printed) and the summary (:data:`SUMMARY`), and
    append the summary to ``$GITHUB_STEP_SUMMARY`` when that is set."""
    report_path, summary_path = repo / REPORT, repo / SUMMARY
    write_text(report_path, report)
    write_text(summary_path, summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")
        log.info("appended the report to $GITHUB_STEP_SUMMARY (%s)", step_summary)
    sys.stdout.write(report)
    log.info("wrote %s and %s", report_path, summary_path)
    return report_path, summary_path


def run_ci(repo: Path, base: str | None = None) -> bool:
    """Pull, reproduce, push (as :func:`.plan_remote` decides), draw the plots, check the
    floors, report. Returns whether every model meets its floor; the report is written
    either way."""
    event = CiEvent.from_env()
    remote = has_remote(repo)
    plan = plan_remote(event, remote)
    (log.warning if remote and not plan.pull else log.info)("DVC remote: %s", plan.reason)
    base = base or base_revision(event)
    if plan.pull:
        dvc(["pull", "--allow-missing"], cwd=repo, capture=False)
    dvc(["repro"], cwd=repo, capture=False)
    if plan.push:
        dvc(["push"], cwd=repo, capture=False)
    images = show_plots(repo)
    params = load_params(repo / "params.yaml")
    checks = check_floors(params.accuracy_floor, repo / "metrics")
    diffs = (diff_markdown("metrics", base, repo), diff_markdown("params", base, repo))
    plots_dir = (repo / REPORT).parent
    publish(
        build_report(checks, *diffs, image_markdown(images, plots_dir), base, plan),
        build_report(checks, *diffs, image_links(images, plots_dir, run_url()), base, plan),
        repo,
    )
    for check in checks:
        (log.info if check.passed else log.error)("%s", check.describe())
    unchecked = sorted(set(params.models) - set(params.accuracy_floor))
    if unchecked:
        log.warning("no accuracy_floor for %s: not checked", ", ".join(unchecked))
    return all(check.passed for check in checks)
