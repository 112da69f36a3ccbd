"""The fetch stage: MNIST from its source into two deterministic tarballs of PNGs."""

from __future__ import annotations

import logging
from pathlib import Path

from mnist_pipeline.core.mnist import SPLITS
from mnist_pipeline.core.params import DataParams
from mnist_pipeline.data.archive import tarball_path, write_tarball
from mnist_pipeline.data.sources import check_splits, load_mnist

log = logging.getLogger(__name__)


def fetch(params: DataParams, raw_dir: Path, cache_dir: Path | None = None) -> None:
    """Load MNIST as ``params`` say, check it, and write one tarball per split."""
    splits = load_mnist(params.source, cache_dir)
    check_splits(splits, params.verify)
    for split in SPLITS:
        images, labels = splits[split]
        path = tarball_path(raw_dir, split)
        write_tarball(path, split, images, labels)
        log.info("wrote %s: %d digits", path, len(images))
