"""Whether ``make ci`` pulls from and pushes to the DVC remote, decided from the GitHub event.

Pushing writes to a store every later run trusts, so it happens only for a push to the
default branch and for a manual dispatch. Pulling needs the remote's credentials, which
GitHub withholds from pull requests opened from forks: without them the pull is skipped
and the pipeline trains from scratch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mnist_pipeline.core.errors import PipelineError

# Set by the workflow to "true" or "false" from an expression on the secrets
# (``${{ secrets.X != '' }}``), so the decision never sees a secret's value. Unset (a run
# on your own machine) means the credentials are whatever your environment holds.
SECRETS_VARIABLE = "CI_REMOTE_SECRETS"
# Set by the workflow from ``github.event.repository.default_branch``; "main" when unset.
DEFAULT_BRANCH_VARIABLE = "CI_DEFAULT_BRANCH"


@dataclass(frozen=True)
class CiEvent:
    """What started the run: GitHub's event name ("" outside GitHub Actions) and ref."""

    name: str
    ref: str
    default_branch: str
    secrets: bool

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CiEvent:
        env = os.environ if environ is None else environ
        secrets = env.get(SECRETS_VARIABLE, "true").strip().lower()
        if secrets not in ("true", "false"):
            raise PipelineError(f"${SECRETS_VARIABLE} is {secrets!r}: expected 'true' or 'false'")
        return cls(
            name=env.get("GITHUB_EVENT_NAME", ""),
            ref=env.get("GITHUB_REF", ""),
            default_branch=env.get(DEFAULT_BRANCH_VARIABLE) or "main",
            secrets=secrets == "true",
        )


@dataclass(frozen=True)
class RemotePlan:
    """Whether to ``dvc pull`` and ``dvc push``, and one line saying why (log and report)."""

    pull: bool
    push: bool
    reason: str


def plan_remote(event: CiEvent, has_remote: bool) -> RemotePlan:
    """Decide pull and push for ``event``; a pure function of its arguments."""
    if not has_remote:
        return RemotePlan(False, False, "no DVC remote configured: training from scratch")
    if not event.secrets:
        return RemotePlan(
            False,
            False,
            "no credentials for the DVC remote (its secrets are unset, or withheld from a pull "
            "request from a fork): dvc pull skipped, training from scratch, nothing pushed",
        )
    if event.name == "":
        return RemotePlan(True, True, "local run: dvc pull, then dvc push of the results")
    if event.name == "workflow_dispatch":
        return RemotePlan(True, True, "manual dispatch: dvc pull, then dvc push of the results")
    if event.name == "push" and event.ref == f"refs/heads/{event.default_branch}":
        return RemotePlan(
            True, True, f"push to {event.default_branch}: dvc pull, then dvc push of the results"
        )
    where = f"{event.name} on {event.ref}" if event.ref else event.name
    return RemotePlan(
        True,
        False,
        f"{where}: dvc pull; no dvc push (only pushes to {event.default_branch} "
        "and manual dispatches write to the remote)",
    )
