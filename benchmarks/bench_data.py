"""The data-path goal: one epoch of training batches through the project's data path, against
torchvision's ImageFolder with per-sample transforms and 2 DataLoader workers.

    python benchmarks/bench_data.py [--images data/images] [--repeats 3]

The project's epoch is DigitFolder + make_loader + BatchTransform as train_model runs
them: with ``models.lenet5``'s augmentation and deskewing from params.yaml, then with
neither; batch size from there too. Its one-time work, decoding the PNGs and computing
the deskew matrices, is timed on its own. Rounds interleave the three epochs so that load
from other processes hits them alike; each figure is the median over rounds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchlib import Figure, bench_parser, median, show, timed
from mnist_pipeline.core.mnist import MEAN, STD
from mnist_pipeline.core.params import ModelParams, load_params
from mnist_pipeline.model.batching import make_loader, transformed
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.runtime import make_deterministic
from mnist_pipeline.model.transforms import BatchTransform, upright_thetas

CPU = torch.device("cpu")
GOAL = "data path"


def baseline_epoch(folder: datasets.ImageFolder, batch_size: int) -> int:
    """The usual way: per-sample PIL decode and transforms in 2 worker processes."""
    loader = DataLoader(folder, batch_size=batch_size, shuffle=True, num_workers=2)
    return sum(len(labels) for _, labels in loader)


def project_epoch(
    dataset: DigitFolder, batch_size: int, transform: BatchTransform, uprights: torch.Tensor
) -> int:
    """Every training batch of one epoch, shuffled and transformed by train_model's code."""
    loader = make_loader(dataset, batch_size, True, transform.generator)
    lookup = uprights if transform.deskew else None
    return sum(len(labels) for _, labels in transformed(loader, transform, CPU, lookup))


def run(images_dir: Path, params: ModelParams, repeats: int) -> list[Figure]:
    train_dir = images_dir / "train"
    generator = make_deterministic(params.seed)
    folder = datasets.ImageFolder(
        str(train_dir),
        transform=transforms.Compose(
            [transforms.Grayscale(), transforms.ToTensor(), transforms.Normalize((MEAN,), (STD,))]
        ),
    )
    decode = [timed(lambda: DigitFolder.read(train_dir)) for _ in range(max(1, repeats // 2))]
    dataset = DigitFolder.read(train_dir)
    assert len(dataset) == len(folder), "ImageFolder and DigitFolder disagree on the images"
    deskewing = [timed(lambda: upright_thetas(dataset.images)) for _ in range(len(decode))]
    uprights = upright_thetas(dataset.images)
    augmented = BatchTransform(params.augment, generator, deskew=params.net.deskew)
    plain = BatchTransform(None, generator)
    baseline, with_aug, without_aug = [], [], []
    for _ in range(repeats):
        baseline.append(timed(lambda: baseline_epoch(folder, params.batch_size)))
        with_aug.append(
            timed(lambda: project_epoch(dataset, params.batch_size, augmented, uprights))
        )
        without_aug.append(
            timed(lambda: project_epoch(dataset, params.batch_size, plain, uprights))
        )
    reference = f"ImageFolder epoch, 2 workers (batch {params.batch_size})"
    base = median(baseline)
    on = "augmentation" + (" and deskewing" if params.net.deskew else "") + " on"
    one_time = f"one-time decode of {len(dataset)} PNGs + deskew matrices"
    return [
        Figure(GOAL, f"project epoch, {on}", median(with_aug), reference, base, 20),
        Figure(GOAL, "project epoch, augmentation off", median(without_aug), reference, base, 100),
        Figure(GOAL, one_time, median(decode) + median(deskewing), reference, base),
    ]


def main() -> None:
    args = bench_parser(__doc__, "images", "params").parse_args()
    show(run(args.images, load_params(args.params).models["lenet5"], args.repeats))


if __name__ == "__main__":
    main()
