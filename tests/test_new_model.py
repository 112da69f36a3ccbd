"""Adding a model is two edits: the tutorial in docs/adding-a-model.md, performed as written
in a temporary clone, trains, evaluates, exports and reports a third network."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from helpers import REPO_ROOT, copy_repo, fast_params, models, run, stages_run

pytestmark = pytest.mark.slow
TUTORIAL = REPO_ROOT / "docs" / "adding-a-model.md"
BLOCK = re.compile(r'```(\w+) title="([^"]+)"\n(.*?)```', re.DOTALL)


def tutorial_blocks() -> dict[str, tuple[str, str]]:
    """The tutorial's titled code blocks: {title: (language, code)}."""
    return {title: (lang, code) for lang, title, code in BLOCK.findall(TUTORIAL.read_text())}


def test_the_tutorial_adds_a_network_with_two_edits(
    reproduced_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo = copy_repo(reproduced_repo[0], tmp_path / "repo")  # reproduced and committed
    env = {"PYTHONPATH": str(repo / "src")}  # the clone's package, with the new network

    blocks = tutorial_blocks()
    (network_path, (lang, code)), (params_title, (params_lang, entry)) = blocks.items()
    assert lang == "python" and params_lang == "yaml" and "under models:" in params_title
    name = Path(network_path).stem
    (repo / network_path).write_text(code)  # edit 1: the class
    params = (repo / "params.yaml").read_text()
    at = params.index("\nevaluate:")  # edit 2: the entry, at the end of `models:`
    (repo / "params.yaml").write_text(params[:at].rstrip("\n") + "\n" + entry + params[at:])
    changed = run(["git", "status", "--porcelain"], repo).stdout.splitlines()
    assert sorted(line[3:] for line in changed) == sorted([network_path, "params.yaml"])

    # the tutorial's entry is a full recipe; the test shortens it to the small data's
    # seconds, as every other model's (fast_params)
    shortened = yaml.safe_load((repo / "params.yaml").read_text())
    shortened["models"][name].update(
        fast_params()["models"][models()[0]] | {"net": shortened["models"][name]["net"]}
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(shortened, sort_keys=False))

    result = run(["dvc", "repro"], repo, **env)
    assert stages_run(result.stdout) == {
        f"train@{name}",
        f"evaluate@{name}",
        f"export@{name}",
        "report",
    }
    metrics = json.loads((repo / "metrics" / f"{name}.json").read_text())
    assert metrics["accuracy"] > 0.5 and metrics["parameters"] == 9_098
    onnx = json.loads((repo / "metrics" / f"{name}-onnx.json").read_text())
    assert onnx["disagreements"] == 0 and (repo / "models" / "onnx" / f"{name}.onnx").is_file()
    assert f"| {name} |" in (repo / "plots" / "comparison" / "summary.md").read_text()

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, **env).stdout)
    assert f"metrics/{name}.json" in next(iter(shown.values()))["data"]
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo, **env).stdout)
    assert {f"plots/models/{name}/{p}" for p in ("history.csv", "confusion.csv")} <= set(
        plots["data"]
    )
    comparison = next(v for k, v in plots["data"].items() if "every model" in k)
    assert {row["model"] for row in comparison[0]["content"]["data"]["values"]} == {*models(), name}
    run(["dvc", "plots", "show"], repo, **env)
    assert name in (repo / "dvc_plots" / "index.html").read_text()
