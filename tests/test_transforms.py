"""BatchTransform: normalization, deskewing, and the random affine and elastic warps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mnist_pipeline.core.mnist import MEAN, STD
from mnist_pipeline.core.params import AugmentParams
from mnist_pipeline.model.dataset import DigitFolder
from mnist_pipeline.model.transforms import (
    BatchTransform,
    augment_strength,
    pixel_centres,
    to_unit,
    upright_theta,
    upright_thetas,
)

AUGMENT = AugmentParams(rotate=10, translate=0.1, scale=0.1, shear=10)
LOW, HIGH = (0 - MEAN) / STD, (1 - MEAN) / STD  # normalized black and white
# Two float32 computations of the same resampling (affine matrices from numpy or from
# torch, the grid by broadcasting or by affine_grid) differ in their last bits, and which
# bits depends on the CPU's kernels: grid coordinates by a few ulps (about 1e-7 of the
# [-1, 1] grid), so a bilinear sample by a few 1e-6 of the pixel range. Compared to
# 5e-5 in normalized units, which is 1.5e-5 of the pixel range (1/250 of a grey level):
# several times what was seen, far below anything that changes a digit.
RESAMPLING_ATOL = 5e-5


def test_normalization_is_exact_and_centres_mnist(train_set: DigitFolder) -> None:
    x = BatchTransform()(train_set.images)
    assert x.dtype == torch.float32 and x.shape == train_set.images.shape
    expected = (train_set.images.float() / 255 - MEAN) / STD
    assert torch.allclose(x, expected, atol=1e-6)
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_to_unit_scales_to_new_floats_and_leaves_its_input_alone() -> None:
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8)
    # float32 division is correctly rounded, but allow the one ulp a reciprocal multiply costs
    torch.testing.assert_close(to_unit(pixels), torch.tensor([0.0, 0.2, 1.0]), rtol=2e-7, atol=0)
    floats = pixels.float()
    to_unit(floats)
    assert torch.equal(floats, torch.tensor([0.0, 51.0, 255.0]))


def test_augmentation_moves_digits_and_stays_in_range(train_set: DigitFolder) -> None:
    images = train_set.images[:256]
    plain = BatchTransform()(images)
    augmented = BatchTransform(AUGMENT, torch.Generator().manual_seed(0))(images)
    assert augmented.shape == plain.shape and augmented.dtype == torch.float32
    assert augmented.min() >= LOW - 1e-5 and augmented.max() <= HIGH + 1e-5
    changed = (augmented - plain).abs().flatten(1).amax(dim=1) > 0.5
    assert changed.float().mean() > 0.95  # nearly every digit moved
    # a small affine motion keeps the ink: total brightness within 30% per image
    ink = (augmented - LOW).flatten(1).sum(1) / (plain - LOW).flatten(1).sum(1)
    assert ((ink > 0.7) & (ink < 1.3)).all()


def test_augmentation_matches_affine_grid_and_grid_sample(train_set: DigitFolder) -> None:
    """The fast path matches the straightforward torch version, draw for draw."""
    images = train_set.images[:100]
    generator = torch.Generator().manual_seed(11)
    draws = torch.Generator().set_state(generator.get_state())
    ours = BatchTransform(AUGMENT, generator)(images)

    u = torch.rand(5, len(images), generator=draws, dtype=torch.float64) * 2 - 1
    angle, shear = u[0] * math.radians(AUGMENT.rotate), u[1] * math.radians(AUGMENT.shear)
    scale = 1 + u[2] * AUGMENT.scale
    shift = torch.stack([u[3], u[4]], dim=1) * AUGMENT.translate * 2
    cos, sin, tan = angle.cos(), angle.sin(), shear.tan()
    a = torch.stack([cos, -sin + cos * tan], dim=1) / scale[:, None]
    b = torch.stack([sin, cos + sin * tan], dim=1) / scale[:, None]
    linear = torch.stack([a, b], dim=1)
    theta = torch.cat([linear, -(linear @ shift[:, :, None])], dim=2).float()
    grid = F.affine_grid(theta, [len(images), 1, 28, 28], align_corners=False)
    x = F.grid_sample(images.float() / 255, grid, align_corners=False)
    torch.testing.assert_close(ours, (x - MEAN) / STD, rtol=0, atol=RESAMPLING_ATOL)
    assert not torch.allclose(ours, BatchTransform()(images), atol=0.5)  # it did move them


def test_elastic_warp_is_bicubic_upsampling_of_random_control_point_shifts() -> None:
    augment = AugmentParams(elastic=2.5, elastic_grid=4)
    generator = torch.Generator().manual_seed(5)
    draws = torch.Generator().set_state(generator.get_state())
    warp = BatchTransform(augment, generator)._random_warp(7)
    shifts = (torch.rand(7, 2, 4, 4, generator=draws) * 2 - 1) * 2.5 * 2 / 28
    expected = F.interpolate(shifts, size=(28, 28), mode="bicubic", align_corners=True)
    assert torch.allclose(warp, expected, atol=1e-6)
    assert warp.abs().max() <= 2.5 * 2 / 28 * 1.2  # bicubic overshoots a little at most


def test_elastic_warp_bends_digits_without_losing_them(train_set: DigitFolder) -> None:
    images = train_set.images[:256]
    plain = BatchTransform()(images)
    warped = BatchTransform(AugmentParams(elastic=2.0), torch.Generator().manual_seed(0))(images)
    assert ((warped - plain).abs().flatten(1).amax(dim=1) > 0.5).float().mean() > 0.9
    ink = (warped - LOW).flatten(1).sum(1) / (plain - LOW).flatten(1).sum(1)
    assert ((ink > 0.5) & (ink < 1.5)).all()  # local stretching changes a stroke's width


def test_augmentation_fades_out_over_the_last_share_of_training() -> None:
    constant = AugmentParams(rotate=10)
    assert [augment_strength(constant, e, 10) for e in (1, 5, 10)] == [1.0, 1.0, 1.0]
    linear = AugmentParams(rotate=10, fade=1.0)
    assert [augment_strength(linear, e, 10) for e in (1, 6, 10)] == pytest.approx([1, 0.5, 0.1])
    late = AugmentParams(rotate=10, fade=0.5)
    assert [augment_strength(late, e, 10) for e in (1, 6, 7, 10)] == pytest.approx([1, 1, 0.8, 0.2])


def test_zero_strength_draws_but_leaves_digits_as_they_are(train_set: DigitFolder) -> None:
    images = train_set.images[:64]
    generator = torch.Generator().manual_seed(0)
    faded = BatchTransform(AugmentParams(rotate=10, translate=0.1, elastic=2), generator)
    faded.strength = 0.0
    assert torch.allclose(faded(images), BatchTransform()(images), atol=1e-5)
    untouched = torch.Generator().manual_seed(0)
    assert not torch.equal(generator.get_state(), untouched.get_state())  # same draws made


def slanted_bar(slant: float, shift: int) -> torch.Tensor:
    """A 1 x 1 x 28 x 28 uint8 stroke, 3 pixels wide, leaning right by ``slant`` per row."""
    image = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    for row in range(6, 22):
        middle = 14 + shift + round(slant * (14 - row))
        image[0, 0, row, middle - 1 : middle + 2] = 255
    return image


def slants(images: torch.Tensor) -> torch.Tensor:
    """Each image's slant (deskew's shear) and centroid offset, from its ink's moments."""
    theta = upright_theta(images, pixel_centres())
    return theta[:, 0, 1], theta[:, :, 2]


def test_deskew_stands_digits_upright_and_centres_them(train_set: DigitFolder) -> None:
    bar = slanted_bar(0.5, shift=4)
    slant, offset = slants(bar.float() / 255)
    assert slant < -0.3 and offset[0, 0] > 0.2  # leaning right, right of the centre
    slant, offset = slants((BatchTransform(deskew=True)(bar) * STD + MEAN).clamp(0, 1))
    assert slant.abs() < 0.05 and offset.abs().max() < 0.02
    digits = train_set.images[:200]
    upright = (BatchTransform(deskew=True)(digits) * STD + MEAN).clamp(0, 1)
    assert slants(upright)[0].abs().mean() < 0.25 * slants(digits / 255)[0].abs().mean()


def test_deskew_then_augment_is_one_resampling_with_the_same_draws(
    train_set: DigitFolder,
) -> None:
    images = train_set.images[:64]
    both = BatchTransform(AUGMENT, torch.Generator().manual_seed(3), deskew=True)
    alone = BatchTransform(AUGMENT, torch.Generator().manual_seed(3))
    out, plain = both(images), alone(images)
    assert not torch.equal(out, plain)
    assert torch.equal(both.generator.get_state(), alone.generator.get_state())
    assert out.min() >= LOW - 1e-5 and out.max() <= HIGH + 1e-5


def test_deskew_matrices_computed_once_match_those_of_each_batch(train_set: DigitFolder) -> None:
    """Training looks each image's deskew matrix up, computed over chunks of the split."""
    uprights = upright_thetas(train_set.images, chunk=333)
    index = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(1))[:100]
    images = train_set.images[index]
    looked_up = BatchTransform(AUGMENT, torch.Generator().manual_seed(5), deskew=True)
    computed = BatchTransform(AUGMENT, torch.Generator().manual_seed(5), deskew=True)
    torch.testing.assert_close(
        looked_up(images, uprights[index]), computed(images), rtol=0, atol=RESAMPLING_ATOL
    )
    assert upright_thetas(train_set.images[:0]).shape == (0, 2, 3)


def test_deskew_leaves_a_blank_image_blank() -> None:
    blank = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    assert torch.allclose(BatchTransform(deskew=True)(blank), torch.full((3, 1, 28, 28), LOW))
