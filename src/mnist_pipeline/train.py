"""The training loop: one model, its params, the training split; the test split only watched.

The test split is evaluated after every epoch for the history plot; it never chooses a
checkpoint or stops training: the checkpoint is always the last epoch's weights. With
``data.validation`` the last training digits are held out and evaluated after every
epoch too: that is the split recipes are compared on.

After every epoch the stage rewrites its history and a live metrics file (the latest
epoch's figures), so `dvc plots show` and `dvc metrics show` follow a run as it goes, and
saves a resume state (:mod:`mnist_pipeline.resume`): a killed run goes on from its last
finished epoch and ends with the same bytes as one never interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mnist_pipeline.atomic import write_text
from mnist_pipeline.checkpoint import save_checkpoint
from mnist_pipeline.data import (
    Batch,
    BatchTransform,
    DigitFolder,
    augment_strength,
    in_runs,
    make_loader,
    prefetch,
    upright_thetas,
)
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.evaluation import channels_last, model_inputs, run_inputs
from mnist_pipeline.models import build_model, count_parameters
from mnist_pipeline.params import TrainParams
from mnist_pipeline.resume import load_state, remove_state, rng_states, save_state, set_rng_states
from mnist_pipeline.resume import state_key as resume_key
from mnist_pipeline.runtime import cpu_threads, make_deterministic, pick_device, provenance

log = logging.getLogger(__name__)
EVAL_BATCH = 1000
PREPARED_RUN = 64  # batches augmented back to back between runs of steps (26 MB)
Inputs = tuple[torch.Tensor, torch.Tensor]  # a batch as the model reads it: floats, labels


@dataclass(frozen=True)
class EpochRecord:
    """One row of ``history.csv``."""

    epoch: int
    train_loss: float  # plain cross-entropy on the (augmented) training batches
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    lr: float  # learning rate of the epoch's last step
    validation_loss: float | None = None  # with a validation split held out, else None
    validation_accuracy: float | None = None


def make_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """SGD or AdamW; weight decay applies to weights only, not to biases."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=params.lr, momentum=params.momentum, nesterov=params.nesterov
        )
    return torch.optim.AdamW(groups, lr=params.lr)


def make_schedule(
    optimizer: torch.optim.Optimizer, params: TrainParams, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step learning-rate schedule: one-cycle, warm-up then cosine, or constant."""
    if params.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=params.lr,
            total_steps=total_steps,
            pct_start=params.warmup,
            cycle_momentum=False,
        )
    warmup_steps = int(params.warmup * total_steps)

    def factor(step: int) -> float:
        if params.schedule == "constant":
            return 1.0
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def check_batch_size(params: TrainParams, name: str, train_size: int) -> None:
    if params.batch_size > train_size:
        raise PipelineError(
            f"params: 'models.{name}.batch_size' is {params.batch_size}, larger than the "
            f"{train_size} training images"
        )


def transformed(
    loader: Iterable[Batch],
    transform: BatchTransform,
    device: torch.device,
    uprights: torch.Tensor | None = None,
) -> Iterator[Inputs]:
    """The loader's images and labels on ``device``, normalized and augmented.

    ``uprights``: the split's deskew matrices (:func:`upright_thetas`), looked up per batch.
    """
    for images, labels, index in loader:
        upright = None if uprights is None else uprights.index_select(0, index)
        images = transform(images.to(device, non_blocking=True), upright)
        yield images, labels.to(device, non_blocking=True)


def ahead(batches: Iterator[Inputs], spare_core: bool) -> Iterator[Inputs]:
    """``batches``, prepared ahead of the steps that use them.

    With a core the model does not use, a background thread prepares the next batches
    on it during the steps; else they are prepared in runs, between runs of steps.
    """
    return prefetch(batches) if spare_core else in_runs(batches, PREPARED_RUN)


def training_model(name: str, params: TrainParams, device: torch.device) -> nn.Module:
    """A fresh model ``name`` on ``device``, in the channels-last layout it trains in."""
    return channels_last(build_model(name, dropout=params.dropout).to(device))


def compute_threads(model: nn.Module) -> int:
    """Intra-op threads to train ``model`` on: every core for a convolutional model, else one.

    On 2 cores LeNet-5's steps run 1.55x faster on two threads than on one, the MLP's
    small matmuls only 1.1x faster: its second core does more preparing the next batch in
    a background thread (an MLP epoch took 0.69 s so, 0.88 s on two threads with the
    batches prepared in between steps). The count is fixed per model and machine, so
    results repeat.
    """
    convolutional = any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in model.modules())
    return cpu_threads() if convolutional else 1


def train_epoch(
    name: str,
    epoch: int,
    model: nn.Module,
    batches: Iterable[Inputs],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    params: TrainParams,
) -> tuple[float, int]:
    """One pass over ``batches``; returns the summed plain cross-entropy and the hits.

    The step only does the arithmetic; the loss check and the statistics run once, over
    the whole epoch's logits, at its end (a non-finite loss still names its step).
    """
    model.train()
    losses, logits_seen, labels_seen = [], [], []
    for images, labels in batches:
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=params.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.detach())
        logits_seen.append(logits.detach())
        labels_seen.append(labels)
    finite = torch.isfinite(torch.stack(losses))
    if not finite.all():
        step = int((~finite).nonzero()[0])
        raise PipelineError(
            f"{name}: loss became {losses[step].item()} at epoch {epoch}, step {step + 1}; "
            f"try a lower models.{name}.lr"
        )
    logits, labels = torch.cat(logits_seen), torch.cat(labels_seen)
    loss_sum = F.cross_entropy(logits, labels, reduction="none").double().sum().item()
    return loss_sum, int((logits.argmax(dim=1) == labels).sum())


def data_digests(
    train_set: DigitFolder, test_set: DigitFolder, validation_set: DigitFolder | None = None
) -> dict[str, str]:
    """The sha256 of each split a run reads, as its provenance records them."""
    digests = {"train": train_set.sha256, "test": test_set.sha256}
    if validation_set is not None:
        digests["validation"] = validation_set.sha256
    return digests


def snapshot(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    history: list[EpochRecord],
) -> dict[str, object]:
    """Everything a run needs to go on after its last epoch: see :func:`restore`."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),  # momentum buffers, learning rates
        "schedule": schedule.state_dict(),
        "rng": rng_states(generator),  # shuffling, augmentation, and the global generators
        "history": [asdict(record) for record in history],
    }


def restore(
    state: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> list[EpochRecord]:
    """Put a :func:`snapshot` back in place; return its history."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    set_rng_states(generator, state["rng"])
    return [EpochRecord(**row) for row in state["history"]]


def train_model(
    name: str,
    params: TrainParams,
    train_set: DigitFolder,
    test_set: DigitFolder,
    validation_set: DigitFolder | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    resume_path: Path | None = None,
) -> tuple[nn.Module, list[EpochRecord]]:
    """Train model ``name`` as ``params`` say; return it with its per-epoch history.

    ``validation_set``: digits held out of ``train_set``, evaluated after every epoch.
    ``on_epoch``: called with the history so far after every epoch (and at once when a
    run resumes). ``resume_path``: where the resume state is saved after every epoch, and
    read at start; a state saved by the same run there is resumed from.
    """
    check_batch_size(params, name, len(train_set))
    generator = make_deterministic(params.seed)
    device = pick_device()
    model = training_model(name, params, device)
    threads, cores = compute_threads(model), cpu_threads()
    torch.set_num_threads(threads)
    key = resume_key(
        {
            "model": name,
            "params": asdict(params),
            # a held-out part shares its split's digest: its size tells one cut from another
            "sizes": [len(part) for part in (train_set, test_set, validation_set) if part],
            "provenance": provenance(
                device, threads, data_digests(train_set, test_set, validation_set)
            ),
        }
    )
    loader = make_loader(
        train_set, params.batch_size, True, generator, pin_memory=device.type == "cuda"
    )
    transform = BatchTransform(params.augment, generator, deskew=params.deskew)
    # what never changes between epochs is computed once: the training digits' deskew
    # matrices and the test pass's input batches
    uprights = upright_thetas(train_set.images) if params.deskew else None
    test_inputs = model_inputs(test_set.images, EVAL_BATCH, device, params.deskew)
    if validation_set is not None:
        validation_inputs = model_inputs(validation_set.images, EVAL_BATCH, device, params.deskew)
    optimizer = make_optimizer(model, params)
    schedule = make_schedule(optimizer, params, params.epochs * len(loader))
    log.info(
        "training %s (%d parameters) on %s, %d thread(s): %d epochs of %d steps",
        name,
        count_parameters(model),
        device,
        threads,
        params.epochs,
        len(loader),
    )
    history: list[EpochRecord] = []
    state = load_state(resume_path, key) if resume_path is not None else None
    if state is not None:
        history = restore(state, model, optimizer, schedule, generator)
        log.info(
            "%s: resumed at epoch %d of %d from %s", name, len(history), params.epochs, resume_path
        )
        if on_epoch is not None:
            on_epoch(history)
    first = len(history) + 1
    # the bar only on a terminal: queued runs log one line an epoch, which
    # `dvc queue logs -f` follows; the log lines are printed above the bar, not across it
    bar = tqdm(
        range(first, params.epochs + 1),
        desc=f"train {name}",
        unit="epoch",
        initial=first - 1,
        total=params.epochs,
        disable=None,
    )
    with logging_redirect_tqdm():
        for epoch in bar:
            transform.strength = augment_strength(params.augment, epoch, params.epochs)
            batches = ahead(transformed(loader, transform, device, uprights), threads < cores)
            with contextlib.closing(batches):  # stops the prefetch thread if a step raises
                loss_sum, correct = train_epoch(
                    name, epoch, model, batches, optimizer, schedule, params
                )
            test = run_inputs(model, test_inputs, test_set.labels)
            record = EpochRecord(
                epoch=epoch,
                train_loss=loss_sum / len(train_set),
                train_accuracy=correct / len(train_set),
                test_loss=test.loss,
                test_accuracy=test.accuracy,
                lr=optimizer.param_groups[0]["lr"],
            )
            if validation_set is not None:
                held_out = run_inputs(model, validation_inputs, validation_set.labels)
                record = replace(
                    record, validation_loss=held_out.loss, validation_accuracy=held_out.accuracy
                )
            history.append(record)
            if resume_path is not None:  # first the state, so a history of k rows means
                state = snapshot(model, optimizer, schedule, generator, history)
                save_state(resume_path, key, epoch, state)  # a state of k epochs
            if on_epoch is not None:
                on_epoch(history)
            bar.set_postfix(loss=f"{record.train_loss:.4f}", test_acc=f"{record.test_accuracy:.4f}")
            log.info(
                "%s epoch %d/%d: train loss %.4f acc %.4f, test loss %.4f acc %.4f, lr %.5f",
                name,
                epoch,
                params.epochs,
                record.train_loss,
                record.train_accuracy,
                record.test_loss,
                record.test_accuracy,
                record.lr,
            )
    return model.to(memory_format=torch.contiguous_format), history


def history_csv(history: list[EpochRecord]) -> str:
    """The history as CSV text, floats at fixed precision so reruns give the same bytes.

    The validation columns appear only when a validation split was held out.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = [{k: v for k, v in asdict(record).items() if v is not None} for record in history]
    names = list(rows[0])  # a run trains at least one epoch
    writer.writerow(names)
    for row in rows:
        writer.writerow([f"{row[n]:.6g}" if isinstance(row[n], float) else row[n] for n in names])
    return buffer.getvalue()


def live_metrics_json(history: list[EpochRecord], epochs: int) -> str:
    """The latest epoch's figures as JSON, at the history's precision; no clock time, so a
    rerun gives the same bytes."""
    latest = {k: v for k, v in asdict(history[-1]).items() if v is not None}
    values = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in latest.items()}
    return json.dumps({**values, "epochs": epochs}, indent=2) + "\n"


def run_training(
    name: str,
    params: TrainParams,
    images_dir: Path,
    checkpoint: Path,
    history_path: Path,
    validation: int = 0,
    live_metrics_path: Path | None = None,
    resume_dir: Path | None = None,
) -> list[EpochRecord]:
    """The train stage: read both splits, train, then write the checkpoint and history.

    ``validation``: how many of the last training digits to hold out (0: none). After
    every epoch the history so far and ``live_metrics_path`` (the latest epoch) are
    rewritten; ``resume_dir/<name>.pt`` holds the resume state until the outputs are
    written (None: no resuming).
    """
    train_set = DigitFolder(images_dir / "train")
    test_set = DigitFolder(images_dir / "test")
    validation_set = None
    if validation:
        train_set, validation_set = train_set.hold_out(validation)

    def write_live(history: list[EpochRecord]) -> None:
        write_text(history_path, history_csv(history))
        if live_metrics_path is not None:
            write_text(live_metrics_path, live_metrics_json(history, params.epochs))

    resume_path = None if resume_dir is None else resume_dir / f"{name}.pt"
    model, history = train_model(
        name, params, train_set, test_set, validation_set, write_live, resume_path
    )
    produced_by = provenance(
        pick_device(), compute_threads(model), data_digests(train_set, test_set)
    )
    save_checkpoint(checkpoint, name, model, params, produced_by, validation)
    write_live(history)
    if resume_path is not None:
        remove_state(resume_path)
    log.info("wrote %s and %s", checkpoint, history_path)
    return history
