"""What users do with the pipeline, through the real dvc CLI on the small data: experiments
and a queued sweep, diffs between commits, `make ci`'s run (and a pull request's, which never
pushes), the offline plots page in headless Chromium, and a push/pull round trip to a
directory remote.

The pipeline runs once per module (``trained_repo``); each workflow works on a copy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from helpers import (
    BIN,
    FAST_TRAINING,
    copy_repo,
    experiments,
    model_stages,
    models,
    run,
    stages_run,
)

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the page gets no network
    "--virtual-time-budget=15000",
    "--dump-dom",
]
# dvc.yaml's plots drawn by vega: per model its history and confusion matrix, and the two
# comparisons of every model; then the PNG plots: per model its misclassified grid, and
# the report's two figures
VEGA_PLOTS = 2 * len(models()) + 2
IMAGE_PLOTS = len(models()) + 2


def write_params(repo: Path, change: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for key, value in change.items():
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def trained_repo(reproduced_repo: tuple[Path, str]) -> Path:
    """This project's pipeline and fast params in a git repo, reproduced and committed on main."""
    return reproduced_repo[0]


@pytest.fixture(scope="module")
def experiment_repo(trained_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dvc exp run -S models.mlp.epochs=1`` on a copy of the trained repo."""
    repo = copy_repo(trained_repo, tmp_path_factory.mktemp("experiment") / "repo")
    result = run(["dvc", "exp", "run", "-n", "short-mlp", "-S", "models.mlp.epochs=1"], repo)
    assert stages_run(result.stdout) == {"train@mlp", "evaluate@mlp", "export@mlp", "report"}
    return repo


def mlp_epochs_and_accuracy(data: dict) -> tuple[int, float]:
    params = data["params"]["params.yaml"]["data"]
    metrics = data["metrics"]["metrics/mlp.json"]["data"]
    return params["models"]["mlp"]["epochs"], metrics["accuracy"]


def test_exp_run_with_a_param_and_exp_show(experiment_repo: Path, trained_repo: Path) -> None:
    rows = experiments(experiment_repo)
    assert {"workspace", "main", "short-mlp"} <= set(rows)
    epochs, accuracy = mlp_epochs_and_accuracy(rows["short-mlp"])
    main_epochs, main_accuracy = mlp_epochs_and_accuracy(rows["main"])
    assert (epochs, main_epochs) == (1, FAST_TRAINING["epochs"])
    assert accuracy != main_accuracy
    assert mlp_epochs_and_accuracy(rows["workspace"]) == (epochs, accuracy)  # results applied
    # the table users read lists the experiment beside the workspace, with params and metrics
    table = run(["dvc", "exp", "show", "--csv"], experiment_repo).stdout
    header, *lines = table.splitlines()
    assert "metrics/mlp.json:accuracy" in header and "models.mlp.epochs" in header
    assert any(line.startswith("short-mlp,") for line in lines)


def test_exp_with_a_validation_split_shows_validation_accuracy(
    trained_repo: Path, tmp_path: Path
) -> None:
    """The recipe log's kind of run: `dvc exp run -S data.validation=N`, read in exp show."""
    repo = copy_repo(trained_repo, tmp_path / "repo")
    command = ["dvc", "exp", "run", "-n", "held-out", "-S", "data.validation=200"]
    result = run([*command, "-S", "models.mlp.epochs=2"], repo)
    # both models train on fewer digits; the data stages do not run again
    assert stages_run(result.stdout) == model_stages()
    metrics = experiments(repo)["held-out"]["metrics"]
    for model in models():
        values = metrics[f"metrics/{model}.json"]["data"]
        assert values["validation_images"] == 200
        assert 0.1 < values["validation_accuracy"] <= 1
        assert values["provenance"]["train"]["threads"] >= 1
    header = run(["dvc", "exp", "show", "--csv"], repo).stdout.splitlines()[0]
    assert "metrics/mlp.json:validation_accuracy" in header
    history = (repo / "plots" / "models" / "mlp" / "history.csv").read_text().splitlines()
    assert history[0].endswith("validation_loss,validation_accuracy") and len(history) == 3


def test_queued_sweep_runs_every_experiment(trained_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(trained_repo, tmp_path / "repo")
    queued = run(
        [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-S",
            "models.mlp.lr=0.05,0.2",
            "-S",
            "models.mlp.epochs=1",
        ],
        repo,
    )
    assert queued.stdout.count("Queued experiment") == 2
    # the workers outlive `dvc queue start` and hold its output: leave it uncaptured
    subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "DVC_NO_ANALYTICS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    deadline = time.monotonic() + 600
    while re.search(r"Queued|Running", run(["dvc", "queue", "status"], repo).stdout):
        assert time.monotonic() < deadline, "queued experiments did not finish in 10 minutes"
        time.sleep(2)
    status = run(["dvc", "queue", "status"], repo).stdout
    assert status.count("Success") == 2, status
    rows = experiments(repo)
    swept = {}
    for name, data in rows.items():
        if name in ("workspace", "main"):
            continue
        params = data["params"]["params.yaml"]["data"]["models"]["mlp"]
        swept[params["lr"]] = data["metrics"]["metrics/mlp.json"]["data"]["accuracy"]
    assert set(swept) == {0.05, 0.2}
    assert all(0 < accuracy <= 1 for accuracy in swept.values())


def test_metrics_and_plots_diff_between_two_commits(experiment_repo: Path, tmp_path: Path) -> None:
    repo = copy_repo(experiment_repo, tmp_path / "repo")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "one epoch for the MLP"], repo)

    metrics = json.loads(run(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json"], repo).stdout)
    accuracy = metrics["metrics/mlp.json"]["accuracy"]
    assert accuracy["old"] != accuracy["new"]
    assert "metrics/lenet5.json" not in metrics  # untouched model: no change
    params = json.loads(run(["dvc", "params", "diff", "HEAD~1", "--json"], repo).stdout)
    old = FAST_TRAINING["epochs"]
    assert params["params.yaml"]["models.mlp.epochs"] == {"old": old, "new": 1, "diff": 1 - old}
    table = run(["dvc", "metrics", "diff", "HEAD~1", "--md"], repo).stdout
    assert re.search(r"\| metrics/mlp.json +\| accuracy", table)

    plots = json.loads(run(["dvc", "plots", "diff", "HEAD~1", "HEAD", "--json"], repo).stdout)
    revisions = plots["data"]["Error rate per epoch, every model (log scale)"][0]["revisions"]
    assert len(revisions) == 2
    run(["dvc", "plots", "diff", "HEAD~1", "HEAD"], repo)
    page = (repo / "dvc_plots" / "index.html").read_text()
    assert page.count("vegaEmbed('#") == VEGA_PLOTS
    assert "cdn.jsdelivr.net" not in page  # the offline template, not DVC's CDN page


@pytest.fixture(scope="module")
def ci_run(experiment_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`python -m mnist_pipeline ci` (what `make ci` runs) with a local remote and a floor
    that the MLP misses, as in GitHub Actions (GITHUB_STEP_SUMMARY set)."""
    root = tmp_path_factory.mktemp("ci")
    repo = copy_repo(experiment_repo, root / "repo")
    store = root / "store"
    run(["dvc", "remote", "add", "-d", "store", str(store)], repo)
    write_params(repo, {"accuracy_floor.lenet5": 0.0, "accuracy_floor.mlp": 0.99})
    summary = root / "summary.md"
    summary.write_text("earlier steps' summary\n")
    result = run(
        ["env", f"GITHUB_STEP_SUMMARY={summary}", "python", "-m", "mnist_pipeline", "ci"],
        repo,
        check=False,
    )
    return {"repo": repo, "store": store, "summary": summary, "result": result}


def test_ci_fails_below_an_accuracy_floor_and_reports(ci_run: dict) -> None:
    result, repo = ci_run["result"], ci_run["repo"]
    assert result.returncode == 1, result.stderr
    assert "accuracy_floor.mlp in params.yaml" in result.stderr
    assert re.search(r"mlp: test accuracy 0\.\d+ is below its floor 0\.9900", result.stderr)
    assert "Data and pipelines are up to date" in result.stdout  # the experiment's results

    summary = ci_run["summary"].read_text()
    assert summary.startswith("earlier steps' summary\n# Pipeline report: accuracy floors FAILED")
    assert re.search(r"\| lenet5 \| 0\.\d+ \| 0\.0000 \| pass \|", summary)
    assert re.search(r"\| mlp \| 0\.\d+ \| 0\.9900 \| \*\*FAIL\*\* \|", summary)
    # against main: the experiment changed the MLP's metrics and epochs, and the floors
    metrics = summary.split("## Metrics against `main`")[1].split("##")[0]
    assert re.search(r"\| metrics/mlp.json +\| accuracy ", metrics)
    params = summary.split("## Params against `main`")[1].split("##")[0]
    old = FAST_TRAINING["epochs"]
    assert re.search(rf"\| params.yaml +\| models.mlp.epochs +\| {old} +\| 1 ", params)
    assert re.search(r"\| params.yaml +\| accuracy_floor.mlp +\| 0.5 +\| 0.99 ", params)
    assert "DVC remote: local run: dvc pull, then dvc push of the results." in summary
    # the summary (and pull request comment) lists the plots in the artifact: no data: URIs
    assert "data:" not in summary
    listed = re.findall(r"^- `(rendered/[^`]+\.png)`$", summary, re.M)
    assert len(listed) == VEGA_PLOTS + IMAGE_PLOTS
    assert summary.endswith((repo / "dvc_plots" / "ci-summary.md").read_text() + "\n")

    report = (repo / "dvc_plots" / "ci-report.md").read_text()  # the file CI prints
    assert report in result.stdout
    links = re.findall(r"\]\((rendered/[^)]+\.png)\)", report)
    assert len(links) == VEGA_PLOTS + IMAGE_PLOTS
    for link in links:
        with Image.open(repo / "dvc_plots" / link) as image:
            assert image.format == "PNG" and min(image.size) > 100
    assert len(list(ci_run["store"].rglob("*"))) > 0  # pushed to the remote


def pull_request_ci(repo: Path, secrets: str) -> subprocess.CompletedProcess[str]:
    """`python -m mnist_pipeline ci` as GitHub runs it for a pull request."""
    env = {
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_REF": "refs/pull/3/merge",
        "CI_REMOTE_SECRETS": secrets,
    }
    command = ["env", *(f"{k}={v}" for k, v in env.items()), "python", "-m", "mnist_pipeline"]
    return run([*command, "ci"], repo)


def test_a_pull_request_never_pushes_and_without_secrets_never_pulls(
    trained_repo: Path, tmp_path: Path
) -> None:
    repo = copy_repo(trained_repo, tmp_path / "repo")
    store = tmp_path / "store"
    run(["dvc", "remote", "add", "-d", "store", str(store)], repo)

    with_secrets = pull_request_ci(repo, "true")
    assert "$ dvc pull --allow-missing" in with_secrets.stderr
    assert "$ dvc push" not in with_secrets.stderr
    assert "pull_request on refs/pull/3/merge: dvc pull; no dvc push" in with_secrets.stderr
    assert not store.exists() or not any(store.rglob("*"))  # nothing written to the remote

    without = pull_request_ci(repo, "false")
    assert "$ dvc pull" not in without.stderr and "$ dvc push" not in without.stderr
    line = "dvc pull skipped, training from scratch, nothing pushed"
    assert re.search(rf"WARNING .*DVC remote: no credentials .*{line}", without.stderr)
    assert line in (repo / "dvc_plots" / "ci-summary.md").read_text()
    assert not store.exists() or not any(store.rglob("*"))


def browser() -> str:
    """Headless Chromium; where none is installed the test skips, except in CI."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    howto = "install Chromium (`make chromium` does, where apt-get runs as root) to run it"
    if os.environ.get("CI"):
        pytest.fail(f"headless Chromium is needed in CI: {howto}")
    pytest.skip(f"no headless Chromium: {howto}")


def drawn_marks(page: Path, tmp_path: Path) -> dict[str, int]:
    """Open ``page`` in headless Chromium with no network; count the vega marks each plot
    div drew (0: blank)."""
    profile = tmp_path / f"profile-{page.stem}"
    result = subprocess.run(
        [browser(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    source = page.read_text()
    ids = re.findall(r'<div id = "([^"]+)">\s*<script type = "text/javascript">', source)
    dom = result.stdout
    starts = sorted((dom.index(f'<div id="{div}"'), div) for div in ids)
    ends = [start for start, _ in starts[1:]] + [len(dom)]
    return {
        div: dom[start:end].count('role="graphics-symbol"')
        for (start, div), end in zip(starts, ends, strict=True)
    }


def test_plots_page_draws_every_chart_with_no_network(ci_run: dict, tmp_path: Path) -> None:
    page = ci_run["repo"] / "dvc_plots" / "index.html"
    source = page.read_text()
    assert "<script src" not in source  # nothing to load: vega is inline
    marks = drawn_marks(page, tmp_path)
    assert len(marks) == VEGA_PLOTS
    assert all(count > 0 for count in marks.values()), marks
    images = re.findall(r'<img src="([^"]+)"', source.rsplit("<body>", 1)[1])
    assert len(images) == IMAGE_PLOTS
    for src in images:
        assert (page.parent / src).read_bytes().startswith(b"\x89PNG")

    # DVC's own page, which loads vega from a CDN, stays blank here: the check can fail
    from dvc_render.vega import VegaRenderer

    bundle = re.search(r"<script>\n\(function \(\) \{.*?\}\)\(\);\n</script>", source, re.S)
    assert bundle is not None
    cdn_page = tmp_path / "cdn.html"
    cdn_page.write_text(source.replace(bundle.group(0), VegaRenderer.SCRIPTS))
    assert set(drawn_marks(cdn_page, tmp_path).values()) == {0}


def test_push_then_pull_into_a_fresh_clone_needs_no_training(ci_run: dict, tmp_path: Path) -> None:
    repo = ci_run["repo"]
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "results, and the remote they are pushed to"], repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)

    pulled = run(["dvc", "pull"], clone)
    assert "models/mlp.pt" in pulled.stdout
    for name in ("models/lenet5.pt", "models/mlp.pt", "data/raw/mnist_train.tar.gz"):
        assert (clone / name).read_bytes() == (repo / name).read_bytes()
    # the image folder is not cached (cache: false): rebuilt from the pulled tarballs
    assert stages_run(run(["dvc", "repro"], clone).stdout) == {"extract"}
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone).stdout
