"""The training loop: one model, its params, the training split; the test split only watched.

A run is set up once (:func:`start_run`), then trained epoch by epoch (:func:`fit_epoch`).
The test split is evaluated after every epoch for the history plot; it never chooses a
checkpoint or stops training: the checkpoint is always the last epoch's weights. With
``data.validation`` the last training digits are held out and evaluated after every epoch
too: that is the split recipes are compared on.

After every epoch the stage rewrites its history and a live metrics file (the latest
epoch's figures), so ``dvc plots show`` and ``dvc metrics show`` follow a run as it goes,
and saves a resume state (:mod:`.resume`): a killed run goes on from its last finished
epoch and ends with the same bytes as one never interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mnist_pipeline.core.atomic import write_text
from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import ModelParams
from mnist_pipeline.model import resume, runtime
from mnist_pipeline.model.batching import Inputs, batches_ahead, make_loader, transformed
from mnist_pipeline.model.checkpoint import Checkpoint, save_checkpoint
from mnist_pipeline.model.dataset import Splits, read_splits
from mnist_pipeline.model.history import EpochRecord, history_csv, live_metrics_json
from mnist_pipeline.model.inference import (
    BATCH_SIZE,
    channels_last,
    evaluate_checkpoint,
    model_inputs,
)
from mnist_pipeline.model.nets import build_model, count_parameters
from mnist_pipeline.model.transforms import BatchTransform, augment_strength, upright_thetas

log = logging.getLogger(__name__)


def make_optimizer(model: nn.Module, params: ModelParams) -> torch.optim.Optimizer:
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
    optimizer: torch.optim.Optimizer, params: ModelParams, total_steps: int
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


def compute_threads(model: nn.Module) -> int:
    """Intra-op threads to train ``model`` on: every core for a convolutional model, else one.

    A convolution's step gains from every core; a small MLP's matmuls gain less from a
    second core than the step does from a spare core preparing the next batch in the
    background. The count is fixed per model and machine, so results repeat.
    """
    convolutional = any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in model.modules())
    return runtime.cpu_threads() if convolutional else 1


@dataclass
class Run:
    """A training run between epochs: the network, its optimizer and everything it reads."""

    name: str
    params: ModelParams
    splits: Splits
    trained: Checkpoint  # the network in training, with what it was built and trained from
    threads: int
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator  # shuffling and augmentation
    loader: Iterable
    transform: BatchTransform
    uprights: torch.Tensor | None  # the training digits' deskew matrices
    test_inputs: list[torch.Tensor]  # the test split as the network reads it
    validation_inputs: list[torch.Tensor] | None
    key: str  # the resume key: the sha256 of everything that decides the run's bytes


def start_run(
    name: str, params: ModelParams, splits: Splits, eval_batch_size: int = BATCH_SIZE
) -> Run:
    """Seed, build the network, and prepare what every epoch reads."""
    assert splits.train is not None
    if params.batch_size > len(splits.train):
        raise PipelineError(
            f"{name}: a batch of {params.batch_size} digits is larger than the "
            f"{len(splits.train)} training digits"
        )
    generator = runtime.make_deterministic(params.seed)
    device = runtime.pick_device()
    model = channels_last(build_model(name, params.net).to(device))
    threads = compute_threads(model)
    torch.set_num_threads(threads)
    provenance = runtime.provenance(device, threads, splits.digests())
    key = resume.state_key(
        {
            "model": name,
            "params": params.model_dump(),
            "sizes": splits.sizes(),
            "provenance": provenance,
        }
    )
    loader = make_loader(
        splits.train, params.batch_size, True, generator, pin_memory=device.type == "cuda"
    )
    deskew = params.net.deskew
    transform = BatchTransform(params.augment, generator, deskew=deskew)
    uprights = upright_thetas(splits.train.images) if deskew else None
    test_inputs = model_inputs(splits.test.images, eval_batch_size, device, deskew)
    validation_inputs = None
    if splits.validation is not None:
        validation_inputs = model_inputs(splits.validation.images, eval_batch_size, device, deskew)
    optimizer = make_optimizer(model, params)
    schedule = make_schedule(optimizer, params, params.epochs * len(loader))
    trained = Checkpoint(name, model, params.net, provenance, len(splits.validation or ()))
    return Run(
        name, params, splits, trained, threads, optimizer, schedule, generator, loader,
        transform, uprights, test_inputs, validation_inputs, key,
    )  # fmt: skip


def train_epoch(
    name: str,
    epoch: int,
    model: nn.Module,
    batches: Iterable[Inputs],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    params: ModelParams,
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
            f"try a lower learning rate"
        )
    logits, labels = torch.cat(logits_seen), torch.cat(labels_seen)
    loss_sum = F.cross_entropy(logits, labels, reduction="none").double().sum().item()
    return loss_sum, int((logits.argmax(dim=1) == labels).sum())


def fit_epoch(run: Run, epoch: int) -> EpochRecord:
    """Train one epoch, then evaluate on the test (and validation) digits."""
    params, splits, model = run.params, run.splits, run.trained.model
    assert splits.train is not None
    run.transform.strength = augment_strength(params.augment, epoch, params.epochs)
    device = next(model.parameters()).device
    batches = batches_ahead(
        transformed(run.loader, run.transform, device, run.uprights),
        spare_core=run.threads < runtime.cpu_threads(),
    )
    with contextlib.closing(batches):  # stops the prefetch thread if a step raises
        loss_sum, correct = train_epoch(
            run.name, epoch, model, batches, run.optimizer, run.schedule, params
        )
    test = evaluate_checkpoint(run.trained, run.test_inputs, splits.test.labels)
    record = EpochRecord(
        epoch=epoch,
        train_loss=loss_sum / len(splits.train),
        train_accuracy=correct / len(splits.train),
        test_loss=test.loss,
        test_accuracy=test.accuracy,
        lr=run.optimizer.param_groups[0]["lr"],
    )
    if run.validation_inputs is not None and splits.validation is not None:
        held_out = evaluate_checkpoint(run.trained, run.validation_inputs, splits.validation.labels)
        record = replace(
            record, validation_loss=held_out.loss, validation_accuracy=held_out.accuracy
        )
    return record


def resume_run(run: Run, path: Path | None) -> list[EpochRecord]:
    """The history of a state saved at ``path`` by this same run, put back in place; else []."""
    state = resume.load_state(path, run.key) if path is not None else None
    if state is None:
        return []
    history = resume.restore(state, run.trained.model, run.optimizer, run.schedule, run.generator)
    log.info(
        "%s: resumed at epoch %d of %d from %s", run.name, len(history), run.params.epochs, path
    )
    return history


def log_epoch(run: Run, record: EpochRecord) -> None:
    log.info(
        "%s epoch %d/%d: train loss %.4f acc %.4f, test loss %.4f acc %.4f, lr %.5f",
        run.name,
        record.epoch,
        run.params.epochs,
        record.train_loss,
        record.train_accuracy,
        record.test_loss,
        record.test_accuracy,
        record.lr,
    )


def train_model(
    name: str,
    params: ModelParams,
    splits: Splits,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    resume_path: Path | None = None,
    eval_batch_size: int = BATCH_SIZE,
) -> tuple[Checkpoint, list[EpochRecord]]:
    """Train model ``name`` as ``params`` say; return it with its per-epoch history.

    ``on_epoch``: called with the history so far after every epoch (and at once when a
    run resumes). ``resume_path``: where the resume state is saved after every epoch, and
    read at start; a state saved by the same run there is resumed from.
    ``eval_batch_size``: the batch size of the epochs' test and validation passes.
    """
    run = start_run(name, params, splits, eval_batch_size)
    log.info(
        "training %s (%d parameters) on %s, %d thread(s): %d epochs of %d steps",
        name,
        count_parameters(run.trained.model),
        next(run.trained.model.parameters()).device,
        run.threads,
        params.epochs,
        len(run.loader),
    )
    history = resume_run(run, resume_path)
    if history and on_epoch is not None:
        on_epoch(history)
    # the bar only on a terminal: queued runs log one line an epoch, which
    # `dvc queue logs -f` follows; the log lines are printed above the bar, not across it
    first = len(history) + 1
    epochs = range(first, params.epochs + 1)
    bar = tqdm(epochs, desc=f"train {name}", unit="epoch", initial=first - 1, total=params.epochs,
               disable=None)  # fmt: skip
    with logging_redirect_tqdm():
        for epoch in bar:
            record = fit_epoch(run, epoch)
            history.append(record)
            if resume_path is not None:  # first the state, so a history of k rows means
                state = resume.snapshot(
                    run.trained.model, run.optimizer, run.schedule, run.generator, history
                )
                resume.save_state(resume_path, run.key, epoch, state)  # a state of k epochs
            if on_epoch is not None:
                on_epoch(history)
            bar.set_postfix(loss=f"{record.train_loss:.4f}", test_acc=f"{record.test_accuracy:.4f}")
            log_epoch(run, record)
    run.trained.model.to(memory_format=torch.contiguous_format)
    return run.trained, history


def run_training(
    name: str,
    params: ModelParams,
    images_dir: Path,
    checkpoint: Path,
    history_path: Path,
    validation: int = 0,
    live_metrics_path: Path | None = None,
    resume_dir: Path | None = None,
    eval_batch_size: int = BATCH_SIZE,
) -> list[EpochRecord]:
    """The train stage: read the splits, train, then write the checkpoint and history.

    ``validation``: how many of the last training digits to hold out (0: none). After
    every epoch the history so far and ``live_metrics_path`` (the latest epoch) are
    rewritten; ``resume_dir/<name>.pt`` holds the resume state until the outputs are
    written (None: no resuming).
    """
    splits = read_splits(images_dir, validation)

    def write_live(history: list[EpochRecord]) -> None:
        write_text(history_path, history_csv(history))
        if live_metrics_path is not None:
            write_text(live_metrics_path, live_metrics_json(history, params.epochs))

    resume_path = None if resume_dir is None else resume_dir / f"{name}.pt"
    trained, history = train_model(name, params, splits, write_live, resume_path, eval_batch_size)
    save_checkpoint(checkpoint, name, trained.model, params, trained.provenance, trained.validation)
    write_live(history)
    if resume_path is not None:
        resume.remove_state(resume_path)
    log.info("wrote %s and %s", checkpoint, history_path)
    return history
