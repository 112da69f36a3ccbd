"""The pieces of `make ci`: accuracy floors, the diff tables, the report's destinations, the
pull/push decision for each GitHub event, and the pull request comment against a local stand-in
for GitHub's API. (The whole run, through dvc, is in test_workflows.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mnist_pipeline.ci import comment as pr_comment
from mnist_pipeline.ci.comment import run_url
from mnist_pipeline.ci.remote import CiEvent, RemotePlan, plan_remote
from mnist_pipeline.ci.run import (
    SUMMARY,
    FloorCheck,
    base_revision,
    build_report,
    check_floors,
    image_links,
    image_markdown,
    publish,
    tidy_diff,
)
from mnist_pipeline.core.errors import PipelineError

METRICS_DIFF = """\
| Path              | Metric                 | main    | workspace   | Change   |
|-------------------|------------------------|---------|-------------|----------|
| metrics/mlp.json  | accuracy               | 0.9871  | 0.9852      | -0.0019  |
| metrics/mlp.json  | per_class.0.precision  | 0.99    | 0.98        | -0.01    |
"""
PARAMS_DIFF = """\
| Path        | Param              | main   | workspace   |
|-------------|--------------------|--------|-------------|
| params.yaml | models.mlp.epochs  | 30     | 3           |
"""


def write_metrics(directory: Path, **accuracies: object) -> Path:
    directory.mkdir(exist_ok=True)
    for model, accuracy in accuracies.items():
        (directory / f"{model}.json").write_text(json.dumps({"accuracy": accuracy}))
    return directory


def test_floors_pass_and_fail_by_model(tmp_path: Path) -> None:
    metrics = write_metrics(tmp_path / "metrics", lenet5=0.9912, mlp=0.9791)
    checks = check_floors({"lenet5": 0.99, "mlp": 0.98}, metrics)
    assert [(c.model, c.passed) for c in checks] == [("lenet5", True), ("mlp", False)]
    assert checks[1].describe() == (
        "mlp: test accuracy 0.9791 is below its floor 0.9800 (accuracy_floor.mlp in params.yaml)"
    )
    assert FloorCheck("mlp", 0.98, 0.98).passed  # the floor itself passes


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "mlp.json: metrics missing"),
        ("{not json", "mlp.json: no readable 'accuracy'"),
        (json.dumps({"loss": 0.1}), "mlp.json: no readable 'accuracy'"),
        (json.dumps({"accuracy": "high"}), "mlp.json: 'accuracy' is 'high', not a number"),
    ],
)
def test_unreadable_metrics_are_named(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / "mlp.json").write_text(content)
    with pytest.raises(PipelineError, match=message):
        check_floors({"mlp": 0.98}, tmp_path)


def test_diff_tables_keep_top_level_rows_and_fold_nested_metrics() -> None:
    metrics = tidy_diff(METRICS_DIFF, "metrics", "main", fold_nested=True)
    top, details = metrics.split("<details>")
    assert "| accuracy " in top and "per_class" not in top
    assert "1 nested metrics changed" in details and "per_class.0.precision" in details
    params = tidy_diff(PARAMS_DIFF, "params", "main")
    assert params.strip() == PARAMS_DIFF.strip()  # params are all nested keys: kept as is
    bare = "| Path   | Metric   | main   | workspace   | Change   |\n|---|---|---|---|---|\n"
    assert tidy_diff(bare, "metrics", "main") == "_No metrics changed against `main`._\n"


PLAN = RemotePlan(False, False, "no DVC remote configured: training from scratch")


def test_images_link_beside_the_report_or_into_the_runs_artifact(tmp_path: Path) -> None:
    images = []
    for name in ("a", "b"):
        images.append(tmp_path / "rendered" / f"{name}.png")
        images[-1].parent.mkdir(exist_ok=True)
        images[-1].write_bytes(b"\x89PNG" + bytes(300))
    linked = image_markdown(images, tmp_path)
    assert "![a](rendered/a.png)" in linked and "![b](rendered/b.png)" in linked
    url = "https://github.com/o/r/actions/runs/7"
    listed = image_links(images, tmp_path, url)
    assert f"`pipeline-report` artifact of [this run]({url})" in listed
    assert "- `rendered/a.png`" in listed and "- `rendered/b.png`" in listed
    assert "data:" not in listed and "![" not in listed  # GitHub shows no data: image


def test_run_url_and_base_revision_from_githubs_variables() -> None:
    env = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "42",
    }
    assert run_url(env) == "https://github.com/o/r/actions/runs/42"
    assert run_url({}) is None
    event = CiEvent("push", "refs/heads/main", "trunk", True)
    assert base_revision(event, {}) == "trunk"  # a local run: the branch itself
    assert base_revision(event, {"GITHUB_ACTIONS": "true"}) == "origin/trunk"
    pr = {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "release"}
    assert base_revision(event, pr) == "origin/release"


def test_report_goes_to_the_step_summary_and_to_a_printed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [FloorCheck("lenet5", 0.995, 0.99), FloorCheck("mlp", 0.97, 0.98)]
    report = build_report(checks, METRICS_DIFF, PARAMS_DIFF, "![a](rendered/a.png)\n", "main", PLAN)
    assert report.startswith("# Pipeline report: accuracy floors FAILED\n")
    assert "| mlp | 0.9700 | 0.9800 | **FAIL** |" in report
    assert "DVC remote: no DVC remote configured: training from scratch.\n" in report
    assert "## Metrics against `main`" in report and "## Params against `main`" in report

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report_path, summary_path = publish(report, "linked version\n", tmp_path)
    assert summary.read_text() == "earlier step\nlinked version\n\n"
    assert report_path.read_text() == report
    assert summary_path == tmp_path / SUMMARY and summary_path.read_text() == "linked version\n"
    assert report in capsys.readouterr().out

    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    publish("second\n", "linked\n", tmp_path)
    assert report_path.read_text() == "second\n"
    assert summary.read_text() == "earlier step\nlinked version\n\n"  # untouched


@pytest.mark.parametrize(
    ("name", "ref", "secrets", "pull", "push", "reason"),
    [
        ("push", "refs/heads/main", True, True, True, "push to main: dvc pull, then dvc push"),
        ("push", "refs/heads/feature", True, True, False, "push on refs/heads/feature: dvc pull;"),
        ("pull_request", "refs/pull/3/merge", True, True, False, "no dvc push"),
        ("pull_request", "refs/pull/3/merge", False, False, False, "dvc pull skipped"),
        ("workflow_dispatch", "refs/heads/feature", True, True, True, "manual dispatch"),
        ("schedule", "refs/heads/main", True, True, False, "no dvc push"),
        ("", "", True, True, True, "local run"),
    ],
)
def test_pull_and_push_for_each_event(
    name: str, ref: str, secrets: bool, pull: bool, push: bool, reason: str
) -> None:
    plan = plan_remote(CiEvent(name, ref, "main", secrets), has_remote=True)
    assert (plan.pull, plan.push) == (pull, push)
    assert reason in plan.reason


def test_no_remote_means_neither_and_the_default_branch_counts() -> None:
    plan = plan_remote(CiEvent("workflow_dispatch", "refs/heads/main", "main", True), False)
    assert (plan.pull, plan.push) == (False, False) and "no DVC remote" in plan.reason
    # a push to main where the default branch is trunk is a push to another branch
    plan = plan_remote(CiEvent("push", "refs/heads/main", "trunk", True), True)
    assert (plan.pull, plan.push) == (True, False)
    assert plan_remote(CiEvent("push", "refs/heads/trunk", "trunk", True), True).push


def test_event_from_githubs_variables() -> None:
    env = {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/3/merge",
        "CI_DEFAULT_BRANCH": "trunk",
        "CI_REMOTE_SECRETS": "false",
    }
    assert CiEvent.from_env(env) == CiEvent("pull_request", "refs/pull/3/merge", "trunk", False)
    assert CiEvent.from_env({}) == CiEvent("", "", "main", True)
    with pytest.raises(PipelineError, match=r"\$CI_REMOTE_SECRETS is 'yes': expected"):
        CiEvent.from_env({"CI_REMOTE_SECRETS": "yes"})


class FakeGitHub(BaseHTTPRequestHandler):
    """The issue comments API of one pull request (#3 of o/r), kept in ``server.comments``."""

    def reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> str:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"]

    def do_GET(self) -> None:  # noqa: N802 (the handler's API)
        server: Any = self.server
        server.calls.append(("GET", self.path))
        if self.headers["Authorization"] != "Bearer t0ken":
            return self.reply(401, {"message": "Bad credentials"})
        path, _, query = self.path.partition("?")
        assert path == "/repos/o/r/issues/3/comments"
        args = dict(part.split("=") for part in query.split("&"))
        size, page = int(args["per_page"]), int(args["page"])
        return self.reply(200, server.comments[(page - 1) * size : page * size])

    def do_POST(self) -> None:  # noqa: N802
        server: Any = self.server
        server.calls.append(("POST", self.path))
        assert self.path == "/repos/o/r/issues/3/comments"
        comment = {"id": 1000 + len(server.comments), "body": self.read_body()}
        comment["html_url"] = f"https://github.com/o/r/pull/3#issuecomment-{comment['id']}"
        server.comments.append(comment)
        self.reply(201, comment)

    def do_PATCH(self) -> None:  # noqa: N802
        server: Any = self.server
        server.calls.append(("PATCH", self.path))
        comment_id = int(self.path.rsplit("/", 1)[1])
        (comment,) = [c for c in server.comments if c["id"] == comment_id]
        comment["body"] = self.read_body()
        self.reply(200, comment)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def github() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    server.comments = [
        {"id": n, "body": f"review {n}", "html_url": f"u{n}"} for n in range(pr_comment.PAGE_SIZE)
    ]
    server.calls = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_one_comment_created_then_updated_in_place(
    github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "ci-summary.md"
    report.write_text("# Pipeline report: accuracy floors passed\n")
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{github.server_port}")
    args = [str(report), "--repo", "o/r", "--pr", "3", "--artifact-url", "https://a/1"]
    assert pr_comment.main(args) == 0
    assert len(github.comments) == 101  # 100 others fill page 1: created on page 2
    created = github.comments[-1]
    assert created["body"].startswith(pr_comment.MARKER + "\n# Pipeline report")
    assert "[Download the `pipeline-report` artifact](https://a/1)" in created["body"]

    report.write_text("# Pipeline report: accuracy floors FAILED\n")
    github.calls.clear()
    assert pr_comment.main(args[:5]) == 0
    assert len(github.comments) == 101  # edited, not added
    assert "FAILED" in created["body"] and "Download" not in created["body"]
    assert github.calls[-1] == ("PATCH", f"/repos/o/r/issues/comments/{created['id']}")
    assert [method for method, _ in github.calls] == ["GET", "GET", "PATCH"]


def test_comment_errors_name_the_call_or_the_file(
    github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{github.server_port}")
    monkeypatch.setenv("GITHUB_TOKEN", "wrong")
    report = tmp_path / "ci-summary.md"
    report.write_text("report\n")
    assert pr_comment.main([str(report), "--repo", "o/r", "--pr", "3"]) == 1
    assert "GitHub API GET /repos/o/r/issues/3/comments" in caplog.text and "401" in caplog.text
    (tmp_path / "folder.md").mkdir()
    assert pr_comment.main([str(tmp_path / "folder.md"), "--repo", "o/r", "--pr", "3"]) == 1
    assert "folder.md: cannot read the report" in caplog.text
    monkeypatch.delenv("GITHUB_TOKEN")
    assert pr_comment.main([str(report), "--repo", "o/r", "--pr", "3"]) == 1
    assert "$GITHUB_TOKEN is not set" in caplog.text


def test_a_missing_report_is_said_in_the_comment(
    github: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "t0ken")
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{github.server_port}")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")
    monkeypatch.setenv("GITHUB_RUN_ID", "9")
    assert pr_comment.main([str(tmp_path / "ci-summary.md"), "--repo", "o/r", "--pr", "3"]) == 0
    body = github.comments[-1]["body"]
    assert body.startswith(pr_comment.MARKER + "\n# Pipeline report missing")
    assert "[the run](https://github.com/o/r/actions/runs/9)" in body


def test_comment_body_is_cut_to_githubs_limit() -> None:
    body = pr_comment.comment_body("x" * 100_000, "https://a/1")
    assert len(body) <= pr_comment.MAX_BODY and body.startswith(pr_comment.MARKER)
    assert "Report cut to fit a comment" in body and body.endswith("(https://a/1)\n")
    assert pr_comment.find_comment([{"id": 5, "body": "quoting " + pr_comment.MARKER}]) is None
