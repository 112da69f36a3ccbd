"""Plots that need no network: a DVC page template with vega inlined, and static images.

``dvc plots show`` fills an HTML template's ``{plot_divs}`` with one ``<div>`` per plot,
each calling ``vegaEmbed`` from an inline script. DVC's default page loads vega, vega-lite
and vega-embed from a CDN, so offline it stays blank. :func:`page_template` inlines the
three libraries instead, bundled by the locked ``vl-convert-python``, and leaves out
``{scripts}`` (the CDN tags). :func:`render_images` turns the specs that
``dvc plots show --json`` gives into PNG files with the same package, no browser needed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import vl_convert

from mnist_pipeline.core.atomic import atomic_dir, write_text
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.tools.dvc_cli import dvc

log = logging.getLogger(__name__)

# DVC's specs declare vega-lite v5: bundle and render with the last v5 release vl-convert has.
VEGA_LITE_VERSION = "5.21"
DEFAULT_TEMPLATE = Path("vendor/offline-plots.html")
DEFAULT_IMAGES = Path("dvc_plots/rendered")

# The bundle's ES-module scope: expose the libraries, and draw charts as SVG so a saved or
# dumped page holds the drawn marks.
SNIPPET = """\
window.vega = vega;
window.vegaLite = vegaLite;
window.vegaEmbed = (el, spec, options) => vegaEmbed(el, spec, { renderer: "svg", ...options });
"""

PAGE = """\
<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<!-- vega {vega}, vega-lite {vega_lite}, vega-embed {embed}, inlined by vl-convert-python
     {vl_convert} (make plots-template): this page needs no network. -->
<script>
(function () {
"use strict";
@BUNDLE@
})();
</script>
<style>
body { font-family: sans-serif; margin: 1em; }
body > div { display: inline-block; vertical-align: top; margin: 0 1em 1em 0; }
table { border-spacing: 15px; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def page_template() -> str:
    """A DVC ``plots.html_template`` holding vega, vega-lite and vega-embed inline."""
    bundle = vl_convert.javascript_bundle(SNIPPET, vl_version=VEGA_LITE_VERSION)
    for marker in ("{plot_divs}", "{scripts}", "{refresh_tag}", "</script"):
        if marker in bundle:  # DVC substitutes the first three; the last would end the tag
            raise PipelineError(f"vl-convert's JavaScript bundle contains '{marker}'")
    header = {
        "{vega}": vl_convert.get_vega_version(),
        "{vega_lite}": VEGA_LITE_VERSION,
        "{embed}": vl_convert.get_vega_embed_version(),
        "{vl_convert}": getattr(vl_convert, "__version__", "(unknown version)"),
    }
    page = PAGE
    for key, value in header.items():
        page = page.replace(key, value)
    return page.replace("@BUNDLE@", bundle.strip())


def write_template(path: Path) -> Path:
    """Write :func:`page_template` to ``path`` atomically (same bytes for the same lock)."""
    write_text(path, page_template())
    log.info("wrote %s", path)
    return path


def slug(name: str) -> str:
    """A file name for plot ``name``: 'plots/mlp/confusion.csv' -> 'mlp-confusion'."""
    stem = re.sub(r"\.(csv|tsv|json|ya?ml|png|jpe?g|gif|svg)$", "", name.strip())
    stem = re.sub(r"^plots/", "", stem)
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "plot"


def render_images(plots: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write every plot of ``dvc plots show --json`` output to ``out_dir`` as a PNG.

    Vega-Lite specs are rendered with vl-convert (no network requests allowed); image plots
    are copied. ``out_dir`` is replaced as a whole. Returns the files written, in plot order.
    """
    errors = plots.get("errors")
    if errors:
        raise PipelineError(f"dvc plots reported errors: {json.dumps(errors)[:500]}")
    names: list[str] = []
    with atomic_dir(out_dir) as tmp:
        for name, entries in plots.get("data", {}).items():
            for entry in entries:
                revisions = entry.get("revisions") or []
                suffix = f"-{slug('-'.join(revisions))}" if len(entries) > 1 else ""
                target = tmp / f"{slug(name)}{suffix}.png"
                if target.name in names:
                    raise PipelineError(f"two plots map to the same image name {target.name}")
                if entry["type"] == "vega":
                    png = vl_convert.vegalite_to_png(
                        entry["content"], vl_version=VEGA_LITE_VERSION, allowed_base_urls=[]
                    )
                    target.write_bytes(png)
                elif entry["type"] == "image":
                    shutil.copyfile(entry["url"], target)
                else:
                    raise PipelineError(f"plot '{name}': unknown type {entry['type']!r}")
                names.append(target.name)
    log.info("rendered %d plots into %s", len(names), out_dir)
    return [out_dir / name for name in names]


def show_plots(repo: Path, images_dir: Path = DEFAULT_IMAGES) -> list[Path]:
    """``dvc plots show`` (the offline page) in ``repo``, then every plot as a PNG."""
    template = repo / DEFAULT_TEMPLATE
    if not template.is_file():
        write_template(template)
    dvc(["plots", "show"], cwd=repo)
    data = json.loads(dvc(["plots", "show", "--json"], cwd=repo))
    return render_images(data, repo / images_dir)
