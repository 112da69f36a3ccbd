"""The extract stage: tarballs into ``<split>/<label>/<index:05d>.png`` class folders."""

from __future__ import annotations

import logging
from pathlib import Path

from mnist_pipeline.archive import NUM_CLASSES, read_tarball
from mnist_pipeline.atomic import atomic_dir
from mnist_pipeline.fetch import tarball_path
from mnist_pipeline.sources import EXPECTED_COUNTS, SPLITS

log = logging.getLogger(__name__)


def extract(raw_dir: Path, images_dir: Path, verify: bool) -> None:
    """Check every member of both tarballs, then write the image folders in one step.

    Nothing appears at ``images_dir`` unless every member of every split passed.
    """
    checked = {
        split: read_tarball(
            tarball_path(raw_dir, split), EXPECTED_COUNTS[split] if verify else None
        )
        for split in SPLITS
    }
    with atomic_dir(images_dir) as tmp:
        for split, digits in checked.items():
            for label in range(NUM_CLASSES):
                (tmp / split / str(label)).mkdir(parents=True)
            for digit in digits:
                (tmp / split / str(digit.label) / f"{digit.index:05d}.png").write_bytes(digit.png)
            log.info("extracted %d %s digits", len(digits), split)
