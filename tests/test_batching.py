"""The training loader, the thread-count guard, and batches prepared ahead (prefetch, runs)."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from torch.utils.data import DataLoader

from mnist_pipeline.core.errors import PipelineError
from mnist_pipeline.core.params import AugmentParams
from mnist_pipeline.model.batching import in_runs, make_loader, prefetch
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.runtime import one_thread
from mnist_pipeline.model.transforms import (
    BatchTransform,
)

AUGMENT = AugmentParams(rotate=10, translate=0.1, scale=0.1, shear=10)


def epochs(dataset: DigitFolder, seed: int, augment: AugmentParams | None, count: int = 2):
    """Every batch of ``count`` epochs, transformed, drawn as train_model draws them."""
    generator = torch.Generator().manual_seed(seed)
    loader = make_loader(dataset, 64, True, generator)
    transform = BatchTransform(augment, generator)
    return [(transform(x), y) for _ in range(count) for x, y, _ in loader]


@pytest.mark.parametrize("batch_size", [64, 100, 1000])
def test_an_epoch_serves_every_image_once(train_set: DigitFolder, batch_size: int) -> None:
    loader = make_loader(train_set, batch_size, True, torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == len(loader) == math.ceil(len(train_set) / batch_size)
    assert all(len(y) == batch_size for _, y, _ in batches[:-1])
    images = torch.cat([x for x, _, _ in batches]).flatten(1)
    order = torch.cat([y for _, y, _ in batches])
    index = torch.cat([i for _, _, i in batches])
    assert torch.equal(images, train_set.images.flatten(1)[index])  # each batch says its images
    assert torch.equal(index.sort().values, torch.arange(len(train_set)))
    assert images.dtype == torch.uint8 and images.shape == train_set.images.flatten(1).shape
    # the same digits, reordered: sorting rows of pixels undoes the shuffle
    assert torch.equal(images.unique(dim=0), train_set.images.flatten(1).unique(dim=0))
    assert torch.equal(order.bincount(minlength=10), train_set.labels.bincount(minlength=10))
    assert not torch.equal(order, train_set.labels)  # shuffled


def test_unshuffled_loader_keeps_the_folder_order(train_set: DigitFolder) -> None:
    images = torch.cat([x for x, _, _ in make_loader(train_set, 300, False)])
    assert torch.equal(images, train_set.images)


def test_batches_and_draws_match_torchs_own_samplers(train_set: DigitFolder) -> None:
    """The index-tensor sampler shuffles exactly as RandomSampler + BatchSampler do."""
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    reference = DataLoader(
        train_set, batch_size=96, shuffle=True, generator=theirs, collate_fn=lambda batch: batch
    )
    loader = make_loader(train_set, 96, True, ours)
    for _ in range(2):
        for (x, y, _), (ref_x, ref_y, _) in zip(loader, reference, strict=True):
            assert torch.equal(x, ref_x) and torch.equal(y, ref_y)
        assert torch.equal(ours.get_state(), theirs.get_state())


def test_same_seed_gives_the_same_shuffled_augmented_batches(train_set: DigitFolder) -> None:
    first, again = epochs(train_set, 3, AUGMENT), epochs(train_set, 3, AUGMENT)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    other = epochs(train_set, 4, AUGMENT)
    assert not torch.equal(first[0][1], other[0][1])
    assert not torch.equal(first[-1][0], other[-1][0])


def test_one_thread_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError), one_thread():
        raise ValueError
    assert torch.get_num_threads() == before


def test_one_thread_refuses_a_background_thread_while_torch_runs_on_more() -> None:
    """The prefetch thread's batches run under one_thread(), which sets torch's process-wide
    thread count: allowed only while the model computes on one thread, so that the
    training step's thread count, and its bytes, never change under it."""
    before = torch.get_num_threads()

    def prepared():
        with one_thread():
            yield torch.get_num_threads()

    try:
        torch.set_num_threads(1)
        assert list(prefetch(prepared())) == [1]
        torch.set_num_threads(2)
        with pytest.raises(RuntimeError, match="background thread 'prefetch'.* 2 threads"):
            list(prefetch(prepared()))
        assert torch.get_num_threads() == 2  # left as the main thread set it
    finally:
        torch.set_num_threads(before)


def test_prefetch_and_runs_yield_everything_in_order() -> None:
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))
    assert list(in_runs(iter(range(50)), 8)) == list(range(50))


def test_runs_take_items_a_run_ahead() -> None:
    taken = []

    def source():
        for i in range(10):
            taken.append(i)
            yield i

    items = in_runs(source(), 4)
    assert next(items) == 0 and taken == [0, 1, 2, 3]


def test_prefetch_raises_the_producers_error() -> None:
    def broken():
        yield 1
        raise PipelineError("bad batch")

    seen = []
    with pytest.raises(PipelineError, match="bad batch"):
        for item in prefetch(broken()):
            seen.append(item)
    assert seen == [1]


def test_closing_prefetch_early_stops_its_thread() -> None:
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    items = prefetch(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 5  # it stopped, a few items ahead at most
