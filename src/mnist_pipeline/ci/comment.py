"""Post the CI report as one comment on a pull request, updated in place on each run.

The comment starts with :data:`MARKER`; a run edits the comment that carries it, or creates
it the first time. Standard library only, so the workflow's comment job runs it with the
runner's ``python3`` and no install:

    python3 -m mnist_pipeline.ci.comment REPORT.md --repo OWNER/NAME --pr N [--artifact-url URL]

The token comes from ``$GITHUB_TOKEN`` and the API from ``$GITHUB_API_URL``
(https://api.github.com when unset).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mnist_pipeline.core.entry import run
from mnist_pipeline.core.errors import PipelineError

log = logging.getLogger(__name__)

MARKER = "<!-- mnist-pipeline-report -->"
# GitHub refuses a comment body over 65,536 characters.
MAX_BODY = 65_000
PAGE_SIZE = 100


def run_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The GitHub Actions run's page (its artifacts are listed there), or None outside it."""
    env = os.environ if environ is None else environ
    parts = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if not all(parts):
        return None
    server, repository, run_id = parts
    return f"{server}/{repository}/actions/runs/{run_id}"


def missing_report(path: Path) -> str:
    """The comment's text when the retrain job left no report."""
    where = f"[the run]({url})" if (url := run_url()) else "the run"
    return (
        "# Pipeline report missing\n\n"
        f"The retrain job stopped before it wrote `{path}`: see {where} for why.\n"
    )


def comment_body(report: str, artifact_url: str | None = None) -> str:
    """The marker, the report, and a direct link to the artifact when there is one; cut to
    GitHub's limit with a note when too long."""
    link = f"\n[Download the `pipeline-report` artifact]({artifact_url})\n" if artifact_url else ""
    note = "\n\n_Report cut to fit a comment: the full one is in the job summary._\n"
    body = f"{MARKER}\n{report.rstrip()}\n{link}"
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY - len(note) - len(link)] + note + link
    return body


def find_comment(comments: Iterable[dict[str, Any]]) -> int | None:
    """The id of the first comment whose body starts with :data:`MARKER`."""
    for comment in comments:
        if str(comment.get("body") or "").startswith(MARKER):
            return int(comment["id"])
    return None


class GitHub:
    """The few REST calls the comment needs, through urllib."""

    def __init__(self, token: str, api_url: str = "https://api.github.com") -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise PipelineError(f"GitHub API {method} {path}: {exc.code} {detail}") from exc
        except urllib.error.URLError as exc:
            raise PipelineError(f"GitHub API {method} {path}: {exc.reason}") from exc

    def comments(self, repo: str, number: int) -> Iterable[dict[str, Any]]:
        """Every comment on issue or pull request ``number``, page by page."""
        page = 1
        while True:
            path = f"/repos/{repo}/issues/{number}/comments?per_page={PAGE_SIZE}&page={page}"
            batch = self.call("GET", path)
            yield from batch
            if len(batch) < PAGE_SIZE:
                return
            page += 1


def upsert_comment(github: GitHub, repo: str, number: int, body: str) -> str:
    """Edit the pull request's marked comment to ``body``, or create it; return its URL."""
    existing = find_comment(github.comments(repo, number))
    if existing is None:
        comment = github.call("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        log.info("created the report comment %s", comment["html_url"])
    else:
        path = f"/repos/{repo}/issues/comments/{existing}"
        comment = github.call("PATCH", path, {"body": body})
        log.info("updated the report comment %s", comment["html_url"])
    return str(comment["html_url"])


def post(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnist_pipeline.ci.comment")
    parser.add_argument("report", type=Path, help="the report (dvc_plots/ci-summary.md)")
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--pr", type=int, required=True, help="pull request number")
    parser.add_argument("--artifact-url", help="link to the uploaded pipeline-report artifact")
    args = parser.parse_args(argv)
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise PipelineError("$GITHUB_TOKEN is not set: the comment needs a token")
    try:
        report = args.report.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.warning("%s: no report (the retrain job stopped early)", args.report)
        report = missing_report(args.report)
    except OSError as exc:
        raise PipelineError(f"{args.report}: cannot read the report: {exc}") from exc
    github = GitHub(token, os.environ.get("GITHUB_API_URL") or "https://api.github.com")
    upsert_comment(github, args.repo, args.pr, comment_body(report, args.artifact_url))


def main(argv: list[str] | None = None) -> int:
    return run(post, argv)


if __name__ == "__main__":
    sys.exit(main())
