"""The image folders' manifest: what the extract stage wrote, checked by every reader.

``data/images/manifest.json`` holds, per split, the image count, the count per class and
a sha256 over every image in index order. The train and evaluate stages depend on this
one small file instead of 70,000 images, and check the images they read against it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.mnist import NUM_CLASSES

MANIFEST = "manifest.json"


class Image(Protocol):
    """One image as the manifest records it: a tarball member, for the extract stage."""

    label: int
    index: int
    png: bytes


def add_image(digest: hashlib._Hash, label: int, index: int, png: bytes) -> None:
    """Feed one image into a split's manifest digest (images go in by index)."""
    digest.update(f"{label} {index} {len(png)}\n".encode())
    digest.update(png)


def split_entry(images: Iterable[Image]) -> dict[str, object]:
    """The manifest's record of one split (images by index): counts and a digest of all."""
    digest = hashlib.sha256()
    counts = [0] * NUM_CLASSES
    for image in images:
        add_image(digest, image.label, image.index, image.png)
        counts[image.label] += 1
    return {"images": sum(counts), "per_class": counts, "sha256": digest.hexdigest()}


def read_manifest(images_dir: Path) -> dict | None:
    """``images_dir``'s manifest, or None for a folder extract did not write."""
    path = images_dir / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PipelineError(
            f"{path}: unreadable manifest ({exc}); extract the images again"
        ) from exc


def check_against_manifest(split_dir: Path, count: int, sha256: str) -> None:
    """Fail unless ``split_dir`` holds what the extract stage's manifest says it wrote.

    A folder without a manifest is no complete extraction: the manifest is written last.
    """
    manifest = read_manifest(split_dir.parent)
    if manifest is None:
        raise PipelineError(
            f"{split_dir.parent / MANIFEST}: missing, so {split_dir} is no complete "
            "extraction; extract the images again"
        )
    listed = manifest.get(split_dir.name)
    found = (listed.get("images"), listed.get("sha256")) if isinstance(listed, dict) else None
    if found != (count, sha256):
        raise PipelineError(
            f"{split_dir}: its {count} images differ from what {MANIFEST} lists (an image was "
            f"changed, added or removed since extraction); extract the images again"
        )
