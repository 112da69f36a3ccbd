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
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from mnist_pipeline.atomic import write_text
from mnist_pipeline.batching import Inputs, batches_ahead, make_loader, transformed
from mnist_pipeline.checkpoint import save_checkpoint
from mnist_pipeline.dataset import DigitFolder
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.history import EpochRecord, history_csv, live_metrics_json
from mnist_pipeline.inference import channels_last, model_inputs, run_inputs
from mnist_pipeline.models import build_model, count_parameters
from mnist_pipeline.params import EvaluateParams, TrainParams
from mnist_pipeline.resume import load_state, remove_state, restore, save_state, snapshot
from mnist_pipeline.resume import state_key as resume_key
from mnist_pipeline.runtime import cpu_threads, make_deterministic, pick_device, provenance
from mnist_pipeline.transforms import BatchTransform, augment_strength, upright_thetas

log = logging.getLogger(__name__)
EVAL_BATCH_SIZE = EvaluateParams().batch_size  # params.yaml's evaluate.batch_size, if unset


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


def training_model(name: str, params: TrainParams, device: torch.device) -> nn.Module:
    """A fresh model ``name`` on ``device``, in the channels-last layout it trains in."""
    return channels_last(build_model(name, dropout=params.dropout).to(device))


def compute_threads(model: nn.Module) -> int:
    """Intra-op threads to train ``model`` on: every core for a convolutional model, else one.

    A convolution's step gains from every core; a small MLP's matmuls gain less from a
    second core than the step does from a spare core preparing the next batch in the
    background (``benchmarks/bench_train.py`` measures both). The count is fixed per model
    and machine, so results repeat.
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


def train_model(
    name: str,
    params: TrainParams,
    train_set: DigitFolder,
    test_set: DigitFolder,
    validation_set: DigitFolder | None = None,
    on_epoch: Callable[[list[EpochRecord]], None] | None = None,
    resume_path: Path | None = None,
    eval_batch_size: int = EVAL_BATCH_SIZE,
) -> tuple[nn.Module, list[EpochRecord]]:
    """Train model ``name`` as ``params`` say; return it with its per-epoch history.

    ``validation_set``: digits held out of ``train_set``, evaluated after every epoch.
    ``on_epoch``: called with the history so far after every epoch (and at once when a
    run resumes). ``resume_path``: where the resume state is saved after every epoch, and
    read at start; a state saved by the same run there is resumed from.
    ``eval_batch_size``: the batch size of the epochs' test and validation passes.
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
            "params": params.model_dump(),
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
    test_inputs = model_inputs(test_set.images, eval_batch_size, device, params.deskew)
    if validation_set is not None:
        validation_inputs = model_inputs(
            validation_set.images, eval_batch_size, device, params.deskew
        )
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
            batches = batches_ahead(
                transformed(loader, transform, device, uprights), spare_core=threads < cores
            )
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


def run_training(
    name: str,
    params: TrainParams,
    images_dir: Path,
    checkpoint: Path,
    history_path: Path,
    validation: int = 0,
    live_metrics_path: Path | None = None,
    resume_dir: Path | None = None,
    eval_batch_size: int = EVAL_BATCH_SIZE,
) -> list[EpochRecord]:
    """The train stage: read both splits, train, then write the checkpoint and history.

    ``validation``: how many of the last training digits to hold out (0: none). After
    every epoch the history so far and ``live_metrics_path`` (the latest epoch) are
    rewritten; ``resume_dir/<name>.pt`` holds the resume state until the outputs are
    written (None: no resuming). ``eval_batch_size``: as :func:`train_model` takes it.
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
        name, params, train_set, test_set, validation_set, write_live, resume_path, eval_batch_size
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
