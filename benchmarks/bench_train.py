"""Goal 2: an epoch through the real training code against the bare arithmetic.

    python benchmarks/bench_train.py [--images data/images] [--repeats 3] [--models lenet5 mlp]

"Real" is ``mnist_pipeline.train.train_model`` for one epoch with the model's params from
params.yaml (augmentation and the test evaluation after the epoch included; model and
optimizer set-up too). "Bare" is forward, loss, backward and optimizer step over the same
batches, already normalized and augmented in memory, with the model in the same layout
and on the same number of threads as train_model runs it.
Rounds alternate the two; each figure is the median over rounds.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the figures

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchlib import Figure, bench_parser, median, show, timed  # noqa: E402
from mnist_pipeline.data import BatchTransform, DigitFolder, make_loader  # noqa: E402
from mnist_pipeline.params import TrainParams, load_params  # noqa: E402
from mnist_pipeline.runtime import cpu_threads, make_deterministic  # noqa: E402
from mnist_pipeline.train import (  # noqa: E402
    compute_threads,
    make_optimizer,
    train_model,
    training_model,
)

GOAL = "2 training loop"
TARGETS = {"lenet5": 1.15, "mlp": 1.5}

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def epoch_batches(params: TrainParams, train_set: DigitFolder) -> Batches:
    """The batches of the first epoch, as train_model draws them, transformed in memory."""
    generator = make_deterministic(params.seed)
    transform = BatchTransform(params.augment, generator)
    loader = make_loader(train_set, params.batch_size, True, generator)
    return [(transform(images), labels) for images, labels, _ in loader]


def bare_epoch(name: str, params: TrainParams, batches: Batches, all_cores: bool = False) -> None:
    """Only the arithmetic: forward, loss, backward and the optimizer step.

    On the threads train_model gives the model, or on every core with ``all_cores``.
    """
    make_deterministic(params.seed)
    model = training_model(name, params, torch.device("cpu"))  # the layout training uses
    if not all_cores:
        torch.set_num_threads(compute_threads(model))
    optimizer = make_optimizer(model, params)
    for images, labels in batches:
        loss = F.cross_entropy(model(images), labels, label_smoothing=params.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def run(
    images_dir: Path, all_params: dict[str, TrainParams], models: list[str], repeats: int
) -> list[Figure]:
    train_set = DigitFolder(images_dir / "train")
    test_set = DigitFolder(images_dir / "test")
    figures = []
    for name in models:
        params = dataclasses.replace(all_params[name], epochs=1)
        batches = epoch_batches(params, train_set)
        threads = compute_threads(training_model(name, params, torch.device("cpu")))
        spare = threads < cpu_threads()  # then also the bare step on every core, for scale
        real, bare, bare_all = [], [], []
        for _ in range(repeats):
            bare.append(timed(lambda: bare_epoch(name, params, batches)))  # noqa: B023
            real.append(timed(lambda: train_model(name, params, train_set, test_set)))  # noqa: B023
            if spare:
                bare_all.append(timed(lambda: bare_epoch(name, params, batches, True)))  # noqa: B023
        what, base = f"{name} epoch through train_model", f"bare step, {threads} thread(s)"
        figures.append(
            Figure(GOAL, what, median(real), base, median(bare), TARGETS.get(name), higher=False)
        )
        if spare:
            base = f"bare step, all {cpu_threads()} cores"
            figures.append(Figure(GOAL, what, median(real), base, median(bare_all), higher=False))
    return figures


def main() -> None:
    parser = bench_parser(__doc__, "images", "params")
    parser.add_argument("--models", nargs="+", default=list(TARGETS))
    args = parser.parse_args()
    params = load_params(args.params).models
    show(run(args.images, params, args.models, args.repeats))


if __name__ == "__main__":
    main()
