"""The PNG digits: decoding with Pillow against torchvision, and the extract stage's check.

    python benchmarks/bench_png.py [--images data/images] [--raw data/raw] [--repeats 3]

Reads every ``<split>/<label>/<index>.png`` under the image folders (70,000 files for
MNIST) into memory once, then times, on one thread and in interleaved rounds:

- decoding all of them to one N x 28 x 28 uint8 array, as the train and evaluate stages
  do when they load a split: ``png.decode_digits`` (Pillow, each file's mode and size
  checked) against ``torchvision.io.decode_png`` file by file; beside it, what importing
  ``torchvision.io`` costs a process that has imported torch already;
- checking each file is a 28x28 gray PNG, as the extract stage does for every tarball
  member: ``png.check_digit`` against Pillow's decode (the decode above);
- reading and checking both tarballs (``archive.read_tarball``, the extract stage's work
  before it writes files), with ``png.check_digit`` and with Pillow's decode in its place.

Both decoders must give the same pixels. Each figure is the median over rounds.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torchvision.io import decode_png

from benchlib import Figure, bench_parser, machine_line, median, show, timed
from mnist_pipeline.core.mnist import SPLITS
from mnist_pipeline.data import archive
from mnist_pipeline.formats.png import check_digit, decode_digit, decode_digits
from mnist_pipeline.model.dataset import scan_split
from mnist_pipeline.model.runtime import one_thread

GOAL = "png decoding"
IMPORT_TIME = (
    "import time, torch; start = time.perf_counter(); import torchvision.io; "
    "print(time.perf_counter() - start)"
)


def read_pngs(images_dir: Path) -> tuple[list[bytes], list[str]]:
    """Every PNG of both splits, found as the train and evaluate stages find them."""
    paths = [path for split in SPLITS for path, _ in scan_split(images_dir / split)]
    return [path.read_bytes() for path in paths], [str(path) for path in paths]


def by_torchvision(pngs: list[bytes]) -> np.ndarray:
    """torchvision's decoder, file by file (deprecated since torchvision 0.29: its warning,
    once per file, is silenced)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tensors = [decode_png(torch.frombuffer(bytearray(d), dtype=torch.uint8)) for d in pngs]
    return torch.cat(tensors).numpy()


def torchvision_import_s() -> float:
    """Seconds ``import torchvision.io`` takes in a fresh process that has torch loaded."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_TIME], capture_output=True, text=True, check=True
    )
    return float(result.stdout)


def read_tarballs(raw_dir: Path) -> int:
    """Read and check every member of the fetch stage's tarballs, as extract does."""
    return sum(len(archive.read_tarball(path)) for path in sorted(raw_dir.glob("*.tar.gz")))


def read_tarballs_with_pillow(raw_dir: Path) -> int:
    """:func:`read_tarballs`, each member checked by decoding it with Pillow instead."""
    with mock.patch.object(archive, "check_digit", decode_digit):
        return read_tarballs(raw_dir)


def run(images_dir: Path, raw_dir: Path, repeats: int) -> list[Figure]:
    with one_thread():
        return _run(images_dir, raw_dir, repeats)


def _run(images_dir: Path, raw_dir: Path, repeats: int) -> list[Figure]:
    pngs, names = read_pngs(images_dir)
    if not np.array_equal(by_torchvision(pngs), decode_digits(pngs, names)):
        raise SystemExit("torchvision decodes other pixels than png.decode_digits")
    members = read_tarballs(raw_dir)
    runs = {
        "pillow": lambda: decode_digits(pngs, names),
        "torchvision": lambda: by_torchvision(pngs),
        "import": torchvision_import_s,
        "check": lambda: [check_digit(data, name) for data, name in zip(pngs, names, strict=True)],
        "tarballs": lambda: read_tarballs(raw_dir),
        "tarballs_pillow": lambda: read_tarballs_with_pillow(raw_dir),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, work in runs.items():
            times[name].append(work() if name == "import" else timed(work))
    t = {name: median(values) for name, values in times.items()}
    count = f"{len(pngs):,} PNGs"
    return [
        Figure(
            GOAL,
            f"png.decode_digits (Pillow), {count}",
            t["pillow"],
            "torchvision decode_png",
            t["torchvision"],
            higher=False,
        ),
        Figure(
            GOAL,
            "import torchvision.io, torch already imported",
            t["import"],
            "torchvision decode_png",
            t["torchvision"],
            higher=False,
        ),
        Figure(
            GOAL,
            f"png.check_digit each, {count}",
            t["check"],
            "Pillow's decode each",
            t["pillow"],
        ),
        Figure(
            GOAL,
            f"read_tarball of both tarballs ({members:,} members), png.check_digit",
            t["tarballs"],
            "the same, Pillow's decode as the check",
            t["tarballs_pillow"],
        ),
    ]


def main() -> None:
    args = bench_parser(__doc__, "images", "raw").parse_args()
    print(machine_line(), flush=True)
    show(run(args.images, args.raw, args.repeats))


if __name__ == "__main__":
    main()
