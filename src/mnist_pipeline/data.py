"""The image-folder Dataset, its DataLoader, and batched normalization and augmentation.

The Dataset decodes every PNG once into one uint8 tensor and serves whole batches by
indexing it (``__getitems__``) with index tensors from :class:`IndexBatches`, so a
training epoch costs no per-sample Python. Pixels stay uint8 until
:class:`BatchTransform` turns a batch into normalized floats, with random affine
augmentation applied to the whole batch at once. :func:`prefetch` and :func:`in_runs`
prepare batches ahead of the steps that use them, without changing what is drawn.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from mnist_pipeline.archive import NUM_CLASSES
from mnist_pipeline.errors import PipelineError
from mnist_pipeline.manifest import add_image, check_against_manifest
from mnist_pipeline.params import AugmentParams
from mnist_pipeline.png import SIDE, decode_digits

MEAN, STD = 0.1307, 0.3081

T = TypeVar("T")


class Batch(NamedTuple):
    """One batch as :class:`DigitFolder` serves it."""

    images: torch.Tensor  # uint8, B x 1 x 28 x 28
    labels: torch.Tensor  # int64, B
    index: torch.Tensor  # int64, B: where each image sits in the dataset


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the enclosed torch ops on a single intra-op thread, then restore the count.

    A batch's per-pixel ops are too small to share: each would open an OpenMP parallel
    region, and on a busy machine a region waits for a descheduled thread (on this
    project's shared 2-core machine an augmented epoch took 11-18 s on 2 threads, 0.5 s
    on one). Per-pixel results do not depend on the thread count, so neither do batches.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def scan_split(split_dir: Path) -> list[tuple[Path, int]]:
    """List ``(path, label)`` for every ``<label>/<index>.png`` under ``split_dir``, by index."""
    if not split_dir.is_dir():
        raise PipelineError(f"{split_dir}: image folder missing (run the extract stage)")
    files = [
        (path, label)
        for label in range(NUM_CLASSES)
        for path in (split_dir / str(label)).glob("*.png")
    ]
    if not files:
        raise PipelineError(f"{split_dir}: holds no <label>/<index>.png images")
    return sorted(files, key=lambda item: (int(item[0].stem), item[1]))


class DigitFolder(Dataset[tuple[torch.Tensor, int]]):
    """MNIST digits from ``<split>/<label>/<index>.png``, decoded once and held in memory.

    When the folder holds the extract stage's ``manifest.json``, the images read must be
    the ones it lists: an image edited, added or removed since is an error, not data.
    """

    def __init__(self, split_dir: Path) -> None:
        files = scan_split(split_dir)
        digest, pngs = hashlib.sha256(), []
        for path, label in files:
            pngs.append(path.read_bytes())
            add_image(digest, label, int(path.stem), pngs[-1])
        self.sha256 = digest.hexdigest()  # as the manifest records the split
        check_against_manifest(split_dir, len(files), self.sha256)
        pixels = decode_digits(pngs, [str(path) for path, _ in files])
        self.images = torch.from_numpy(pixels).unsqueeze(1)  # N x 1 x 28 x 28 uint8
        self.labels = torch.tensor([label for _, label in files], dtype=torch.int64)
        self.paths = [path for path, _ in files]

    def hold_out(self, count: int) -> tuple[DigitFolder, DigitFolder]:
        """The first ``len - count`` digits and the last ``count``, as two datasets.

        The training split's last digits make the validation split a recipe is chosen on;
        both parts share this dataset's memory and its ``sha256``.
        """
        if not 0 < count < len(self):
            raise PipelineError(
                f"params: 'data.validation' is {count}, but the split has {len(self)} digits: "
                f"hold out at least 1 and leave at least 1 to train on (0 turns it off)"
            )
        cut = len(self) - count
        return self._part(slice(0, cut)), self._part(slice(cut, None))

    def _part(self, rows: slice) -> DigitFolder:
        part = DigitFolder.__new__(DigitFolder)
        part.sha256 = self.sha256
        part.images, part.labels = self.images[rows], self.labels[rows]
        part.paths = self.paths[rows]
        return part

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __getitems__(self, indices: list[int] | torch.Tensor) -> Batch:
        """One whole batch in a single indexing operation (DataLoader's batched fetch)."""
        index = torch.as_tensor(indices)
        with one_thread():
            images, labels = self.images.index_select(0, index), self.labels.index_select(0, index)
        return Batch(images, labels, index)


def _keep_batch(batch: Batch) -> Batch:
    """collate_fn for a dataset that already returns whole batches."""
    return batch


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
        generator=generator,  # DataLoader draws its base seed from it, as before
        collate_fn=_keep_batch,
        num_workers=0,
        pin_memory=pin_memory,
    )


def augment_strength(augment: AugmentParams, epoch: int, epochs: int) -> float:
    """How much of the augmentation ranges epoch ``epoch`` (1-based) of ``epochs`` uses.

    Full strength, then, over the last ``augment.fade`` share of training, a linear fade
    towards none, so the last epochs fit the digits as they are.
    """
    if not augment.fade:
        return 1.0
    remaining = 1 - (epoch - 1) / epochs
    return min(1.0, remaining / augment.fade)


def pixel_centres() -> torch.Tensor:
    """The 28 pixel centres in [-1, 1], just where F.affine_grid(align_corners=False) has them."""
    identity = F.affine_grid(torch.eye(2, 3)[None], [1, 1, SIDE, SIDE], align_corners=False)
    return identity[0, 0, :, 0].clone()


def upright_theta(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """n x 2 x 3 affine matrices that deskew each image of ``x``: ink upright and centred.

    From the ink's moments, in ``centres``' [-1, 1] grid units: its centroid (u0, v0) and
    its slant ``a = cov(u, v) / var(v)``. Output point (u, v) samples input point
    (u + a v + u0, v + v0), which moves the centroid to the middle and shears the slant
    away: the classic MNIST deskewing, which several classifiers of LeCun et al. 1998 use.
    A blank image gets the identity.
    """
    ink = x[:, 0].double()  # n x h x w
    pos = centres.double()  # u across a row, v down a column: the same 28 values
    by_row, by_column = ink.sum(dim=2), ink.sum(dim=1)  # n x h, n x w
    mass = by_row.sum(dim=1).clamp_min(1e-12)
    u0, v0 = by_column @ pos / mass, by_row @ pos / mass
    var_v = by_row @ (pos * pos) / mass - v0 * v0
    cov = (ink @ pos) @ pos / mass - u0 * v0  # sum of ink * u * v, over the mass
    slant = cov / var_v.clamp_min(1e-12)
    one, zero = torch.ones_like(slant), torch.zeros_like(slant)
    return torch.stack([one, slant, u0, zero, one, v0], dim=1).view(-1, 2, 3)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as new floats in [0, 1]: what deskewing measures and normalizing starts from.

    Out of place, so a float input is left as it was.
    """
    return images.float() / 255


def upright_thetas(images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """:func:`upright_theta` of every uint8 image in ``images``, computed once for a split.

    Each image's matrix depends on its pixels alone, so it is the same to the bit as the
    one computed from any batch holding the image; training looks them up per batch
    instead of computing them again every epoch. Chunks bound the float64 working set.
    """
    centres = pixel_centres()
    with one_thread():
        parts = [upright_theta(to_unit(part), centres) for part in images.split(chunk)]
    return torch.cat(parts) if parts else torch.empty(0, 2, 3, dtype=torch.float64)


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The affine maps ``outer`` after ``inner`` (both n x 2 x 3): point -> outer(inner(point))."""
    total = outer[:, :, :2] @ inner
    total[:, :, 2] += outer[:, :, 2]
    return total


class BatchTransform:
    """uint8 batch -> normalized float batch, optionally deskewed and randomly warped.

    Each batch costs a few whole-batch ops: the affine matrices come from numpy on n
    values, and the sampling grid is built by broadcasting instead of ``F.affine_grid``,
    whose per-image batched matmul cost more than the sampling itself. Both give the
    same float32 values as the torch-only computation they replace (the grid to the bit:
    ``x * t0 + y * t1 + t2``, in ``affine_grid``'s order; the matrices checked over 1.5
    million draws, and by tests/test_data.py).
    """

    def __init__(
        self,
        augment: AugmentParams | None = None,
        generator: torch.Generator | None = None,
        deskew: bool = False,
    ):
        self.augment = augment if augment is not None and augment.enabled else None
        self.generator = generator
        self.deskew = deskew  # deskewing happens first: augmentation then moves upright digits
        self.strength = 1.0  # scales every augmentation range; see augment_strength()
        self._centres = pixel_centres()
        if self.augment is not None:
            aug = self.augment
            # the uniform draws scale to: angle, shear, zoom, shift x, shift y
            self._bounds = np.array(
                [math.radians(aug.rotate), math.radians(aug.shear), aug.scale] + [aug.translate] * 2
            )[:, None]
            if aug.elastic:
                # each control point's bicubic weight at each of the 28 pixel positions
                unit = torch.eye(aug.elastic_grid)[:, None, None, :]
                spread = F.interpolate(unit, size=(1, SIDE), mode="bicubic", align_corners=True)
                self._spread = spread[:, 0, 0, :].T.contiguous()

    def __call__(self, images: torch.Tensor, upright: torch.Tensor | None = None) -> torch.Tensor:
        """Transform a uint8 batch; ``upright``: its deskew matrices, if already computed."""
        with one_thread():
            x = to_unit(images)
            if self.augment is not None or self.deskew:
                x = self._warp(x, upright)
            return x.sub_(MEAN).div_(STD)

    def _random_theta(self, n: int) -> torch.Tensor:
        """n x 2 x 3 affine matrices mapping output coordinates to input coordinates."""
        # one draw for all five variables, row by row: the same numbers as five draws of n
        uniform = torch.rand(5, n, generator=self.generator, dtype=torch.float64) * 2 - 1
        angle, shear, zoom, shift_x, shift_y = uniform.numpy() * (self._bounds * self.strength)
        scale, shift_x, shift_y = 1 + zoom, shift_x * 2, shift_y * 2
        # the inverse of the image motion: rotate, shear, then scale
        cos, sin, tan = np.cos(angle), np.sin(angle), np.tan(shear)
        a0, a1 = cos / scale, (cos * tan - sin) / scale
        b0, b1 = sin / scale, (cos + sin * tan) / scale
        rows = [a0, a1, -(a0 * shift_x + a1 * shift_y), b0, b1, -(b0 * shift_x + b1 * shift_y)]
        return torch.from_numpy(np.stack(rows, axis=1).astype(np.float32)).view(n, 2, 3)

    def _random_warp(self, n: int) -> torch.Tensor:
        """n x 2 x 28 x 28 smooth random displacements, in grid units, for an elastic warp.

        Each of an ``elastic_grid`` x ``elastic_grid`` lattice of control points moves by up to
        ``elastic`` pixels along each axis; bicubic interpolation spreads the moves smoothly
        over the image (the control-point form of Simard et al.'s 2003 elastic distortion).
        """
        side = self.augment.elastic_grid
        shifts = torch.rand(n, 2, side, side, generator=self.generator) * 2 - 1
        shifts *= self.augment.elastic * self.strength * 2 / SIDE  # pixels -> grid units
        # bicubic upsampling is separable: B @ shifts @ B.T, B the 28 x side weights
        return self._spread @ shifts @ self._spread.T

    def _warp(self, x: torch.Tensor, upright: torch.Tensor | None) -> torch.Tensor:
        """Deskew, then rotate, shear, scale, translate and warp each image: one resampling."""
        n = x.shape[0]
        centres = self._centres.to(x.device)
        if self.augment is not None:
            theta = self._random_theta(n).to(x.device)
        else:
            theta = torch.eye(2, 3, device=x.device).expand(n, 2, 3)
        if self.deskew:
            upright = upright_theta(x, centres) if upright is None else upright.to(x.device)
            theta = compose(upright, theta.double()).float()
        theta = theta[:, :, :, None, None]  # n x 2 x 3 x 1 x 1
        # grid[n, :, h, w] = x_w * t0 + y_h * t1 + t2, summed in affine_grid's order; built
        # channels-first (contiguous rows) and handed over as an n x h x w x 2 view
        grid = theta[:, :, 0] * centres + theta[:, :, 1] * centres[:, None]
        grid += theta[:, :, 2]
        if self.augment is not None and self.augment.elastic:
            grid += self._random_warp(n).to(x.device)
        grid = grid.permute(0, 2, 3, 1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def in_runs(items: Iterable[T], size: int) -> Iterator[T]:
    """Iterate ``items``, taking them ``size`` at a time.

    Preparing a run of batches, then training on them, keeps each phase's working set in
    the cache: alternating one augmentation with one LeNet-5 step evicted both (the
    augmentation took 0.45 s an epoch so, 0.27 s alone).
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
    An exception in the thread is raised here; leaving the loop early stops the thread.
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
