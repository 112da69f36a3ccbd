"""The training-loop goal: an epoch through the real training code against the bare arithmetic.

    python benchmarks/bench_train.py [--images data/images] [--repeats 5] [--models lenet5 mlp]

"Real" is what one more epoch of ``mnist_pipeline.model.train.train_model`` costs, with the
model's params from params.yaml (augmentation and the test evaluation after the epoch
included): the time of a 3-epoch run less that of a 1-epoch run, halved, so the run's
one-time set-up (model, optimizer, deskew matrices, the test inputs) cancels out; the
1-epoch run, set-up included, is printed too. "Bare" is forward, loss, backward and
optimizer step over the same batches, already normalized and augmented in memory, with
the model in the same layout and on the same number of threads as train_model runs it.
Rounds alternate the runs, at least 5 of them. The goal is on each run's fastest round,
as ``timeit`` takes it: on a shared machine the same run's time swings by a third
between rounds, more than the goals' margins. The ratio of the medians is printed too.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the figures

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchlib import Figure, bench_parser, median, rounds_for_fastest, show, timed  # noqa: E402
from mnist_pipeline.core.params import ModelParams, load_params  # noqa: E402
from mnist_pipeline.model.batching import make_loader  # noqa: E402
from mnist_pipeline.model.dataset import DigitFolder, read_splits  # noqa: E402
from mnist_pipeline.model.inference import channels_last  # noqa: E402
from mnist_pipeline.model.nets import build_model  # noqa: E402
from mnist_pipeline.model.runtime import cpu_threads, make_deterministic, pick_device  # noqa: E402
from mnist_pipeline.model.train import compute_threads, make_optimizer, train_model  # noqa: E402
from mnist_pipeline.model.transforms import BatchTransform  # noqa: E402

GOAL = "training loop"
TARGETS = {"lenet5": 1.15, "mlp": 1.5}
EXTRA_EPOCHS = 2  # an epoch's cost: train_model of 1 + 2 epochs against 1 epoch

Batches = list[tuple[torch.Tensor, torch.Tensor]]
CPU = torch.device("cpu")


def epoch_batches(params: ModelParams, train_set: DigitFolder) -> Batches:
    """The first epoch's batches, drawn and augmented as train_model does, in memory.

    Without deskewing: it moves pixels, not the step's arithmetic, which is all the bare
    step times.
    """
    generator = make_deterministic(params.seed)
    transform = BatchTransform(params.augment, generator)
    loader = make_loader(train_set, params.batch_size, True, generator)
    return [(transform(images), labels) for images, labels, _ in loader]


def bare_epoch(
    name: str,
    params: ModelParams,
    batches: Batches,
    all_cores: bool = False,
    device: torch.device = CPU,
) -> None:
    """Only the arithmetic: forward, loss, backward and the optimizer step.

    On the threads train_model gives the model, or on every core with ``all_cores``; on a
    GPU, with ``batches`` already there, up to the last step's end.
    """
    make_deterministic(params.seed)
    model = channels_last(build_model(name, params.net).to(device))  # as training lays it out
    if not all_cores:
        torch.set_num_threads(compute_threads(model))
    optimizer = make_optimizer(model, params)
    for images, labels in batches:
        loss = F.cross_entropy(model(images), labels, label_smoothing=params.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(
    images_dir: Path, all_params: dict[str, ModelParams], models: list[str], repeats: int
) -> list[Figure]:
    splits = read_splits(images_dir)
    train_set = splits.train
    figures = []
    device = pick_device()  # train_model's device: MNIST_PIPELINE_DEVICE, else CUDA if present
    for name in models:
        params = all_params[name].model_copy(update={"epochs": 1})
        longer = params.model_copy(update={"epochs": 1 + EXTRA_EPOCHS})
        batches = [(x.to(device), y.to(device)) for x, y in epoch_batches(params, train_set)]
        threads = compute_threads(build_model(name, params.net))
        # on the CPU with a core to spare, also the bare step on every core, for scale
        spare = device.type == "cpu" and threads < cpu_threads()
        one, more, bare, bare_all = [], [], [], []
        rounds = rounds_for_fastest(repeats)
        for _ in range(rounds):
            bare.append(timed(lambda: bare_epoch(name, params, batches, False, device)))  # noqa: B023
            one.append(timed(lambda: train_model(name, params, splits)))  # noqa: B023
            more.append(timed(lambda: train_model(name, longer, splits)))  # noqa: B023
            if spare:
                bare_all.append(timed(lambda: bare_epoch(name, params, batches, True)))  # noqa: B023
        # what one more epoch costs: the one-time set-up of a run cancels out
        fastest = (min(more) - min(one)) / EXTRA_EPOCHS
        typical = (median(more) - median(one)) / EXTRA_EPOCHS
        what = f"{name} epoch through train_model"
        base = f"bare step, {threads} thread(s)" if device.type == "cpu" else f"bare step, {device}"
        figures += [
            Figure(
                GOAL,
                f"{what}, fastest of {rounds} rounds",
                fastest,
                f"{base}, fastest",
                min(bare),
                TARGETS.get(name),
                higher=False,
            ),
            Figure(
                GOAL,
                f"{what}, median of {rounds} rounds",
                typical,
                f"{base}, median",
                median(bare),
                higher=False,
            ),
            Figure(
                GOAL,
                f"{name} train_model of 1 epoch, set-up included, fastest",
                min(one),
                f"{base}, fastest",
                min(bare),
                higher=False,
            ),
        ]
        if spare:
            base = f"bare step, all {cpu_threads()} cores, fastest"
            what = f"{what}, fastest of {rounds} rounds"
            figures.append(Figure(GOAL, what, fastest, base, min(bare_all), higher=False))
    return figures


def main() -> None:
    parser = bench_parser(__doc__, "images", "params")
    parser.add_argument("--models", nargs="+", default=list(TARGETS))
    args = parser.parse_args()
    params = load_params(args.params).models
    show(run(args.images, params, args.models, args.repeats))


if __name__ == "__main__":
    main()
