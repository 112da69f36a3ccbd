"""The extract stage: tarballs into ``<split>/<label>/<index:05d>.png`` class folders.

Beside the split folders it writes ``manifest.json``: per split, the image count and one
sha256 over every image's label, index and PNG bytes. It changes exactly when the images
do, so stages can depend on that one small file instead of DVC hashing 70,000 files for
each stage that reads them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from mnist_pipeline.core.atomic import atomic_dir
from mnist_pipeline.core.mnist import EXPECTED_COUNTS, NUM_CLASSES, SPLITS
from mnist_pipeline.data.archive import Digit, read_tarball, tarball_path
from mnist_pipeline.formats.manifest import MANIFEST, split_entry

log = logging.getLogger(__name__)


def write_split(split_dir: Path, digits: list[Digit]) -> None:
    """Write ``digits`` as ``<label>/<index:05d>.png`` under the new folder ``split_dir``.

    Plain ``os`` calls: 60,000 small files, so the per-file overhead is what counts.
    """
    for label in range(NUM_CLASSES):
        (split_dir / str(label)).mkdir(parents=True)
    root = str(split_dir)
    for digit in digits:
        fd = os.open(
            f"{root}/{digit.label}/{digit.index:05d}.png",
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            0o666,  # less the umask, as open() does
        )
        try:
            os.write(fd, digit.png)
        finally:
            os.close(fd)


def extract(raw_dir: Path, images_dir: Path, verify: bool) -> None:
    """Check every member of both tarballs, then write the image folders in one step.

    Nothing appears at ``images_dir`` unless every member of every split passed. A split
    is written by a background thread while the next tarball is read and checked.
    """
    manifest = {}
    with atomic_dir(images_dir) as tmp:
        writers: list[threading.Thread] = []
        errors: list[BaseException] = []

        def write(split: str, digits: list[Digit]) -> None:
            try:
                write_split(tmp / split, digits)
            except BaseException as exc:  # raised in the main thread below
                errors.append(exc)

        try:
            for split in SPLITS:
                digits = read_tarball(
                    tarball_path(raw_dir, split), EXPECTED_COUNTS[split] if verify else None
                )
                writer = threading.Thread(target=write, args=(split, digits), name=split)
                writer.start()
                writers.append(writer)
                manifest[split] = split_entry(digits)
        finally:
            for writer in writers:
                writer.join()
        if errors:
            raise errors[0]
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        for split in SPLITS:
            log.info("extracted %d %s digits", manifest[split]["images"], split)
