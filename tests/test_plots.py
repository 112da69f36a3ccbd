"""The offline page template and the static images of `make plots`.
(The page drawn in headless Chromium is in test_workflows.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc_render.html import HTML
from PIL import Image

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.tools.plots import page_template, render_images, slug

LINE_SPEC = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": [{"epoch": e, "accuracy": a} for e, a in [(1, 0.9), (2, 0.95), (3, 0.97)]]},
    "mark": "line",
    "encoding": {
        "x": {"field": "epoch", "type": "quantitative"},
        "y": {"field": "accuracy", "type": "quantitative"},
    },
}


def test_template_inlines_vega_and_fills_like_dvcs_page() -> None:
    template = page_template()
    assert template == page_template()  # same lock, same bytes
    assert template.count("{plot_divs}") == 1
    assert "{scripts}" not in template  # DVC's CDN script tags have nowhere to go
    assert "<script src" not in template and "cdn.jsdelivr" not in template
    assert "window.vegaEmbed" in template and len(template) > 500_000

    page = HTML(template).with_element('<div id="p1">chart</div>').embed()
    assert '<div id="p1">chart</div>' in page
    assert "{plot_divs}" not in page and "{refresh_tag}" not in page


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Accuracy per epoch", "accuracy-per-epoch"),
        ("plots/lenet5/confusion.csv", "lenet5-confusion"),
        ("plots/mlp/misclassified.png", "mlp-misclassified"),
        ("plots/comparison/accuracy.png", "comparison-accuracy"),
    ],
)
def test_plot_names_become_file_names(name: str, expected: str) -> None:
    assert slug(name) == expected


def test_every_plot_becomes_a_png(tmp_path: Path) -> None:
    grid = tmp_path / "dvc_plots" / "grid.png"
    grid.parent.mkdir()
    Image.new("L", (40, 30), 128).save(grid)
    shown = {
        "data": {
            "Accuracy per epoch": [
                {"type": "vega", "revisions": ["workspace"], "content": LINE_SPEC}
            ],
            "plots/mlp/misclassified.png": [
                {"type": "image", "revisions": ["HEAD~1"], "url": str(grid)},
                {"type": "image", "revisions": ["workspace"], "url": str(grid)},
            ],
        }
    }
    out = tmp_path / "rendered"
    written = render_images(shown, out)
    assert [p.name for p in written] == [
        "accuracy-per-epoch.png",
        "mlp-misclassified-head-1.png",
        "mlp-misclassified-workspace.png",
    ]
    with Image.open(written[0]) as chart:
        assert chart.format == "PNG" and chart.width > 100 and chart.height > 100
        colours = chart.convert("RGB").getcolors(1 << 16)
        assert colours is not None and len(colours) > 10  # axes, labels and a line drawn
    assert written[1].read_bytes() == grid.read_bytes()
    again = render_images(shown, tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_a_bad_plot_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    out.mkdir()
    (out / "old.png").write_bytes(b"old")
    bad = {"data": {"a": [{"type": "vega", "content": LINE_SPEC}], "b": [{"type": "table"}]}}
    with pytest.raises(PipelineError, match="plot 'b': unknown type 'table'"):
        render_images(bad, out)
    assert [p.name for p in out.iterdir()] == ["old.png"]
    with pytest.raises(PipelineError, match="dvc plots reported errors"):
        render_images({"errors": [{"name": "x", "type": "FileNotFoundError"}]}, out)
