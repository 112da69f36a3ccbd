"""The GitHub Actions workflows, checked here without GitHub: zizmor (security) and actionlint
(syntax, expressions, job graph) on every workflow file, and the rules the retraining
workflow keeps (least privilege, pinned current actions, tests before retraining)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import BIN, REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
PIPELINE = REPO_ROOT / ".github" / "workflows" / "pipeline.yml"
ACTIONLINT = REPO_ROOT / "tools" / "actionlint.cjs"
# The first major of each action that runs on Node 24 (GitHub removed Node 20 from runners).
NODE24_MAJORS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/cache": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 6,
}
PINNED = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v(\d+)[\d.]*\s*$")


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    """``zizmor --offline`` with every persona's audits, as ``make lint`` runs it."""
    command = [str(BIN / "zizmor"), "--offline", "--persona", "auditor", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    """actionlint (WebAssembly, under node) through the script ``make lint`` runs."""
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "@tktco" / "node-actionlint").is_dir():
        howto = "actionlint needs Node.js and `npm ci` (package-lock.json): run `make test`"
        if os.environ.get("CI"):
            pytest.fail(howto)
        pytest.skip(howto)
    command = [node, str(ACTIONLINT), *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    return workflow


def test_there_are_workflows_to_check() -> None:
    assert PIPELINE in WORKFLOWS


def test_zizmor_finds_nothing_in_any_workflow() -> None:
    result = zizmor(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_zizmor_fails_on_an_unpinned_action(tmp_path: Path) -> None:
    unpinned = tmp_path / "pipeline.yml"
    text = PIPELINE.read_text()
    unpinned.write_text(re.sub(r"actions/cache@[0-9a-f]{40}", "actions/cache@v5", text))
    result = zizmor(unpinned)
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout


def test_actionlint_finds_nothing_in_any_workflow() -> None:
    result = actionlint(*WORKFLOWS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        # YAML that no longer parses: a step's key indented one space less than its siblings
        (
            ("        with:\n          name: pipeline-report", "        with:\n         name: x\n"),
            "could not parse as YAML",
        ),
        # valid YAML, a broken expression: a job output that does not exist
        (
            ("needs.retrain.outputs.artifact-url", "needs.retrain.outputs.artifact-link"),
            'property "artifact-link" is not defined',
        ),
    ],
)
def test_a_broken_workflow_fails_with_actionlints_message(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = PIPELINE.read_text()
    assert edit[0] in text
    broken = tmp_path / "pipeline.yml"
    broken.write_text(text.replace(edit[0], edit[1], 1))
    result = actionlint(broken)
    assert result.returncode == 1
    finding = rf"^{re.escape(str(broken))}:\d+:\d+: .*{re.escape(message)}"
    assert re.search(finding, result.stdout, re.M), result.stdout


def test_every_action_is_pinned_to_a_commit_of_a_node24_major() -> None:
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "uses:" not in line:
                continue
            match = PINNED.match(line)
            assert match, f"{path.name}: not pinned by full SHA with '# vN' after it: {line}"
            action, _, major = match.groups()
            assert int(major) >= NODE24_MAJORS.get(action, 0), f"{path.name}: Node 20 major: {line}"


def test_least_privilege_in_the_pipeline() -> None:
    workflow = load(PIPELINE)
    assert workflow["permissions"] == {"contents": "read"}
    writes = {
        name: {scope for scope, access in job["permissions"].items() if access != "read"}
        for name, job in workflow["jobs"].items()
    }
    assert writes == {"test": set(), "retrain": set(), "comment": {"pull-requests"}}
    assert "pull_request" in workflow["jobs"]["comment"]["if"]
    for name, job in workflow["jobs"].items():
        assert "secrets." not in yaml.safe_dump(job.get("env", {})), name
        for step in job["steps"]:
            assert step.get("with", {}).get("persist-credentials") in (None, False)
            if "secrets." in yaml.safe_dump(step):
                assert (name, step.get("run")) == ("retrain", "make ci"), step
        checkouts = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkouts and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_tests_run_before_retraining_and_trigger_it() -> None:
    workflow = load(PIPELINE)
    runs = [step.get("run") for step in workflow["jobs"]["test"]["steps"]]
    assert "make lint" in runs and "make test" in runs
    assert workflow["jobs"]["retrain"]["needs"] == "test"
    assert workflow["jobs"]["comment"]["needs"] == "retrain"
    push, pull_request = workflow["on"]["push"]["paths"], workflow["on"]["pull_request"]["paths"]
    assert push == pull_request and "tests/**" in push
