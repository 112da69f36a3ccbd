"""Training batches: the DataLoader over a :class:`DigitFolder`, and preparing batches ahead.

:func:`make_loader` shuffles with the run's generator and fetches each batch in one
indexing operation; :func:`batches_ahead` normalizes and augments the batches ahead of
the steps that use them, in a background thread (:func:`prefetch`) or in runs between
steps (:func:`in_runs`), without changing what is drawn.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from torch.utils.data import DataLoader, Sampler

from mnist_pipeline.model.dataset import Batch, DigitFolder
from mnist_pipeline.model.runtime import one_thread
from mnist_pipeline.model.transforms import BatchTransform

T = TypeVar("T")
Inputs = tuple[torch.Tensor, torch.Tensor]  # a batch as the model reads it: floats, labels
PREPARED_RUN = 64  # batches prepared back to back between runs of steps (26 MB)


class IndexBatches(Sampler[torch.Tensor]):
    """The indices of each batch as one tensor: a new permutation every epoch, or in order.

    With a generator it draws exactly what torch's ``RandomSampler`` + ``BatchSampler``
    draw: the permutation it uses, and a second one that ``RandomSampler`` draws and
    throws away before the last, partial batch. So the batches, and every later draw from
    the generator, are the same as theirs, without a Python int per image.
    """

    def __init__(
        self, size: int, batch_size: int, shuffle: bool, generator: torch.Generator | None
    ) -> None:
        self.size, self.batch_size = size, batch_size
        self.shuffle, self.generator = shuffle, generator

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if not self.shuffle:
            yield from torch.arange(self.size).split(self.batch_size)
            return
        with one_thread():
            order = torch.randperm(self.size, generator=self.generator)
        batches = order.split(self.batch_size)
        full = self.size // self.batch_size
        yield from batches[:full]
        with one_thread():
            torch.randperm(self.size, generator=self.generator)  # RandomSampler's second
        yield from batches[full:]


def _keep_batch(batch: Batch) -> Batch:
    """collate_fn for a dataset that already returns whole batches."""
    return batch


def make_loader(
    dataset: DigitFolder,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    pin_memory: bool = False,
) -> DataLoader[Batch]:
    """A DataLoader over ``dataset`` that shuffles with ``generator`` and batches in one go.

    The data is in memory, so ``num_workers=0``: no worker processes to seed or to start.
    """
    return DataLoader(
        dataset,
        batch_sampler=IndexBatches(len(dataset), batch_size, shuffle, generator),
        generator=generator,  # DataLoader draws its base seed from it
        collate_fn=_keep_batch,
        num_workers=0,
        pin_memory=pin_memory,
    )


def transformed(
    loader: Iterable[Batch],
    transform: BatchTransform,
    device: torch.device,
    uprights: torch.Tensor | None = None,
) -> Iterator[Inputs]:
    """The loader's images and labels on ``device``, normalized and augmented.

    ``uprights``: the split's deskew matrices (:func:`.upright_thetas`), looked up per batch.
    """
    for images, labels, index in loader:
        upright = None if uprights is None else uprights.index_select(0, index)
        images = transform(images.to(device, non_blocking=True), upright)
        yield images, labels.to(device, non_blocking=True)


def in_runs(items: Iterable[T], size: int) -> Iterator[T]:
    """Iterate ``items``, taking them ``size`` at a time.

    Preparing a run of batches, then training on them, keeps each phase's working set in
    the cache, where alternating one augmentation with one step evicts both.
    """
    it = iter(items)
    while run := list(itertools.islice(it, size)):
        yield from run


class _Failed:
    """What the prefetch thread hands over when its iterable raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread that stays up to ``depth`` items ahead.

    Preparing the next batch (indexing, augmentation) then overlaps the training step on
    this one: torch's kernels release the GIL. Everything ``items`` draws from a random
    generator is drawn in that one thread, in the same order, so results do not change.
    The thread's work runs under :func:`.one_thread`, which refuses to run there unless the
    caller computes on one thread. An exception in the thread is raised here; leaving the
    loop early stops the thread.
    """
    handover: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer(_Failed(exc))
            return
        offer(_DONE)

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while (item := handover.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def batches_ahead(batches: Iterator[Inputs], spare_core: bool) -> Iterator[Inputs]:
    """``batches``, prepared ahead of the steps that use them.

    With a core the model does not use (it trains on one thread), a background thread
    prepares the next batches on it during the steps; else they are prepared in runs,
    between runs of steps.
    """
    return prefetch(batches) if spare_core else in_runs(batches, PREPARED_RUN)
