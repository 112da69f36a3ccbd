"""Batched pixel transforms: normalization, deskewing, and random affine and elastic warps.

Pixels stay uint8 until :class:`BatchTransform` turns a whole batch into normalized
floats. Deskewing and augmentation are one resampling: each image's affine map (and
elastic displacement) is composed into one sampling grid, read by ``F.grid_sample``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mnist_pipeline.core.mnist import MEAN, SIDE, STD
from mnist_pipeline.core.params import AugmentParams
from mnist_pipeline.model.runtime import one_thread


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


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as new floats in [0, 1]: what deskewing measures and normalizing starts from.

    Out of place, so a float input is left as it was.
    """
    return images.float() / 255


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


def upright_thetas(images: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """:func:`upright_theta` of every uint8 image in ``images``, computed once for a split.

    Each image's matrix depends on its pixels alone, so training looks them up per batch
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


def sampling_grid(
    theta: torch.Tensor, centres: torch.Tensor, inplace: bool = False
) -> torch.Tensor:
    """The n x 2 x 28 x 28 grid (channels first) of the n x 2 x 3 maps ``theta``.

    ``grid[n, :, h, w] = x_w * t0 + y_h * t1 + t2``, summed in ``F.affine_grid``'s order,
    so it holds the same float32 values; built by broadcasting, which costs less than
    ``affine_grid``'s per-image batched matmul. ``inplace``: add the last term in place,
    one buffer less per batch (training); the default builds a graph without in-place ops.
    """
    theta = theta[:, :, :, None, None]  # n x 2 x 3 x 1 x 1
    grid = theta[:, :, 0] * centres + theta[:, :, 1] * centres[:, None]
    return grid.add_(theta[:, :, 2]) if inplace else grid + theta[:, :, 2]


def resample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``x`` read at the channels-first ``grid``: bilinear, zeros outside the image."""
    grid = grid.permute(0, 2, 3, 1)  # the n x h x w x 2 view grid_sample takes
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class BatchTransform:
    """uint8 batch -> normalized float batch, optionally deskewed and randomly warped.

    The random affine matrices come from numpy on n values per batch; they equal torch's
    float32 computation of the same maps (the tests check both against ``F.affine_grid``
    and ``F.grid_sample``).
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
        grid = sampling_grid(theta, centres, inplace=True)
        if self.augment is not None and self.augment.elastic:
            grid += self._random_warp(n).to(x.device)
        return resample(x, grid)
