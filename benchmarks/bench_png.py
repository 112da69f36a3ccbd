"""The project's PNG digit decoder against torchvision.io.decode_png and Pillow.

    python benchmarks/bench_png.py [--images data/images] [--repeats 3]

Reads every ``<split>/<label>/<index>.png`` under the image folders (70,000 files for
MNIST) into memory once, then times, on one thread and in interleaved rounds:

- decoding all of them to one N x 28 x 28 uint8 array, as the train and evaluate stages
  do when they load a split: ``png.decode_digits``, ``torchvision.io.decode_png`` file by
  file, and Pillow file by file;
- checking each file is a 28x28 gray PNG, as the extract stage does for every tarball
  member: ``png.check_digit`` against a full decode by each library;
- reading and checking both tarballs (``archive.read_tarball``, the extract stage's work
  before it writes files), with ``png.check_digit`` and with Pillow's decode in its place.

All three decoders must give the same pixels. Each figure is the median over rounds.
"""

from __future__ import annotations

import io
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image
from torchvision.io import decode_png

from benchlib import Figure, bench_parser, machine_line, median, show, timed
from mnist_pipeline import archive
from mnist_pipeline.png import check_digit, decode_digit, decode_digits
from mnist_pipeline.runtime import one_thread

GOAL = "png decoding"


def read_pngs(images_dir: Path) -> tuple[list[bytes], list[str]]:
    """Every PNG under ``images_dir``'s split folders, in a fixed order."""
    paths = sorted(images_dir.glob("*/*/*.png"))
    if not paths:
        raise SystemExit(f"{images_dir}: no <split>/<label>/<index>.png files (dvc repro extract)")
    return [path.read_bytes() for path in paths], [str(path) for path in paths]


def by_torchvision(pngs: list[bytes]) -> np.ndarray:
    tensors = [decode_png(torch.frombuffer(data, dtype=torch.uint8)) for data in pngs]
    return torch.cat(tensors).numpy()


def by_pillow(pngs: list[bytes]) -> np.ndarray:
    images = []
    for data in pngs:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            images.append(np.asarray(image, dtype=np.uint8))
    return np.stack(images)


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
    ours = decode_digits(pngs, names)
    for library, decode in (("torchvision", by_torchvision), ("Pillow", by_pillow)):
        if not np.array_equal(decode(pngs), ours):
            raise SystemExit(f"{library} decodes other pixels than png.decode_digits")
    timings: dict[str, list[float]] = {
        "ours": [],
        "torchvision": [],
        "pillow": [],
        "check": [],
        "tarballs": [],
        "tarballs_pillow": [],
    }
    members = read_tarballs(raw_dir)
    for _ in range(repeats):
        timings["ours"].append(timed(lambda: decode_digits(pngs, names)))
        timings["torchvision"].append(timed(lambda: by_torchvision(pngs)))
        timings["pillow"].append(timed(lambda: by_pillow(pngs)))
        timings["check"].append(
            timed(lambda: [check_digit(data, name) for data, name in zip(pngs, names, strict=True)])
        )
        timings["tarballs"].append(timed(lambda: read_tarballs(raw_dir)))
        timings["tarballs_pillow"].append(timed(lambda: read_tarballs_with_pillow(raw_dir)))
    count = f"{len(pngs):,} PNGs"
    ours = median(timings["ours"])
    check = median(timings["check"])
    return [
        Figure(
            GOAL,
            f"png.decode_digits, {count}",
            ours,
            "torchvision decode_png",
            median(timings["torchvision"]),
        ),
        Figure(GOAL, f"png.decode_digits, {count}", ours, "Pillow", median(timings["pillow"])),
        Figure(
            GOAL,
            f"png.check_digit each, {count}",
            check,
            "torchvision decode_png",
            median(timings["torchvision"]),
        ),
        Figure(GOAL, f"png.check_digit each, {count}", check, "Pillow", median(timings["pillow"])),
        Figure(
            GOAL,
            f"read_tarball of both tarballs ({members:,} members), png.check_digit",
            median(timings["tarballs"]),
            "the same, Pillow's decode as the check",
            median(timings["tarballs_pillow"]),
        ),
    ]


def main() -> None:
    args = bench_parser(__doc__, "images", "raw").parse_args()
    print(machine_line(), flush=True)
    show(run(args.images, args.raw, args.repeats))


if __name__ == "__main__":
    main()
