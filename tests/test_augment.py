"""Batched data augmentation: per-sample parameters, their distributions, eval identity, cutout's clipped area,
agreement with the per-image torchvision path, and the config builder.

Statistical checks use a fixed seed, so they are deterministic; their tolerances are 5 standard errors (Z), so a
correct op passes them for (almost) any seed while a wrong distribution (one draw per batch, an off-by-one offset
range, a square kept inside the image) misses them by many standard errors.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from trainlab.augment import (
    ORDER,
    ColorJitter,
    Cutout,
    HFlip,
    RandomCrop,
    RandomResizedCrop,
    Rotate,
    Translate,
    VFlip,
    adjust_colour,
    per_sample_transform,
    rotate,
)

Z = 5.0  # tolerance in standard errors


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def same_images(n: int, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    """``n`` copies of one image whose pixels are all different (so every flip/shift is recognisable)."""
    return (torch.randperm(c * h * w).float() / (c * h * w)).view(1, c, h, w).expand(n, c, h, w).clone()


def all_ops() -> list[torch.nn.Module]:
    return [
        HFlip(),
        VFlip(),
        RandomCrop(2),
        RandomResizedCrop(),
        Translate(),
        Rotate(),
        ColorJitter(),
        Cutout(size=4, image_size=8),
    ]


def n_distinct(y: torch.Tensor) -> int:
    return torch.unique(y.flatten(1), dim=0).shape[0]


def crop_offsets(y: torch.Tensor, padded: torch.Tensor) -> torch.Tensor:
    """For each output, the (i, j) with ``y[n] == padded[0, :, i:i+H, j:j+W]``; asserts exactly one matches."""
    h, w = y.shape[-2:]
    cells = [(i, j) for i in range(padded.shape[-2] - h + 1) for j in range(padded.shape[-1] - w + 1)]
    match = torch.stack([(y == padded[:, :, i : i + h, j : j + w]).flatten(1).all(1) for i, j in cells], dim=1)
    assert (match.sum(1) == 1).all(), "every output is the padded image at exactly one offset"
    return torch.tensor(cells)[match.int().argmax(1)]


def flip_rate(op: torch.nn.Module, n: int) -> float:
    x = same_images(n)
    y = op.train()(x)
    flipped = (y == x.flip(op.dims)).flatten(1).all(1)
    assert (flipped | (y == x).flatten(1).all(1)).all(), "each output is the image or its mirror image"
    return flipped.double().mean().item()


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------------------------- per-sample draws


@pytest.mark.parametrize("op", [HFlip(p=0.3), VFlip(p=0.7)], ids=["hflip", "vflip"])
def test_flip_rate_matches_p_with_one_draw_per_sample(op: HFlip) -> None:
    n = 4000
    rate = flip_rate(op, n)
    assert abs(rate - op.p) < Z * binomial_se(op.p, n)  # one draw per batch would give 0 or 1


def test_flip_with_p_0_and_1_is_never_and_always() -> None:
    assert flip_rate(HFlip(p=0.0), 100) == 0.0
    assert flip_rate(HFlip(p=1.0), 100) == 1.0


def test_crop_and_rotate_and_translate_give_different_samples_different_outputs() -> None:
    x = same_images(200)
    # crop: 81 equally likely offsets; 200 draws hit about 81 (1 - (80/81)^200) = 74 of them
    assert n_distinct(RandomCrop(4).train()(x)) >= 60
    # translate by up to 1 pixel on 8 x 8: 9 shifts
    assert n_distinct(Translate(0.125).train()(x)) == 9
    # rotation angles are continuous: every sample differs
    assert n_distinct(Rotate(15).train()(x)) == 200
    assert n_distinct(RandomResizedCrop().train()(x)) == 200
    assert n_distinct(ColorJitter().train()(x)) == 200


@pytest.mark.parametrize("op", all_ops(), ids=lambda op: type(op).__name__)
def test_eval_mode_is_the_identity(op: torch.nn.Module) -> None:
    x = torch.rand(16, 3, 8, 8)
    y = op.eval()(x)
    assert torch.equal(y, x)


# ---------------------------------------------------------------------------------------------------------- crop


def test_crop_output_is_the_padded_image_at_a_uniform_offset() -> None:
    p, per_cell = 4, 200
    cells = (2 * p + 1) ** 2
    x = same_images(cells * per_cell)
    offsets = crop_offsets(RandomCrop(p).train()(x), F.pad(x[:1], (p, p, p, p)))
    assert offsets.min() == 0 and offsets.max() == 2 * p
    counts = torch.bincount(offsets[:, 0] * (2 * p + 1) + offsets[:, 1], minlength=cells).double()
    chi2 = ((counts - per_cell) ** 2 / per_cell).sum().item()
    # chi-square with 80 degrees of freedom: mean 80, standard deviation sqrt(160) = 12.6; an offset range that is
    # one short (e.g. randint(0, 2p)) leaves 17 cells empty and gives chi2 > 3000
    assert chi2 < cells - 1 + Z * math.sqrt(2 * (cells - 1))


def test_crop_reflect_mode_uses_reflected_pixels() -> None:
    p, h = 2, 8
    x = same_images(500, h=h)
    reflect_index = torch.tensor([2, 1] + list(range(h)) + [6, 5])  # reflection without repeating the edge pixel
    padded = x[:1][:, :, reflect_index][:, :, :, reflect_index]
    offsets = crop_offsets(RandomCrop(p, padding_mode="reflect").train()(x), padded)
    assert len({tuple(o) for o in offsets.tolist()}) == 25


def test_crop_reflect_padding_must_be_smaller_than_the_image() -> None:
    with pytest.raises(ValueError, match=r"augment\.crop\.padding.*0\.\.7"):
        RandomCrop(8, padding_mode="reflect", image_size=8)


# -------------------------------------------------------------------------------------------------------- cutout


def expected_cutout_fraction(h: int, w: int, size: int) -> float:
    """Exact mean masked fraction: centre uniform over all pixels, square [c - size//2, c - size//2 + size) clipped."""

    def mean_cover(n: int) -> float:
        return sum(min(c - size // 2 + size, n) - max(c - size // 2, 0) for c in range(n)) / n / n

    return mean_cover(h) * mean_cover(w)


def masked_fraction(op: Cutout, n: int, h: int, w: int) -> torch.Tensor:
    return (op.train()(torch.ones(n, 1, h, w)) == 0).double().mean(dim=(1, 2, 3))


def test_cutout_expected_masked_area_on_32x32_is_19_percent_not_25() -> None:
    assert expected_cutout_fraction(32, 32, 16) == pytest.approx((14 / 32) ** 2) == pytest.approx(0.19140625)
    frac = masked_fraction(Cutout(size=16, image_size=32), 20000, 32, 32)
    se = frac.std().item() / math.sqrt(len(frac))
    assert abs(frac.mean().item() - 0.19140625) < Z * se
    assert abs(frac.mean().item() - 0.25) > 20 * se  # a square kept inside the image masks exactly 25 %


def test_cutout_default_size_on_28x28_is_14_with_the_exact_expected_area() -> None:
    op = Cutout(image_size=28)
    assert op.size == 14
    expected = expected_cutout_fraction(28, 28, 14)
    assert expected == pytest.approx((343 / 784) ** 2)  # 343 of 784 = 28^2 (centre, position) pairs per axis
    frac = masked_fraction(op, 20000, 28, 28)
    assert abs(frac.mean().item() - expected) < Z * frac.std().item() / math.sqrt(len(frac))


@pytest.mark.parametrize("size", [16, 7])
def test_cutout_mask_is_one_square_of_side_size_clipped_at_the_border(size: int) -> None:
    h = 32
    mask = Cutout(size=size, image_size=h).train()(torch.ones(4000, 1, h, h))[:, 0] == 0  # [N, H, W]
    rows, cols = mask.any(2), mask.any(1)  # [N, H], [N, W]
    n_rows, n_cols = rows.sum(1), cols.sum(1)
    assert torch.equal(mask.sum((1, 2)), n_rows * n_cols), "the mask is a full rectangle"
    assert (n_rows <= size).all() and (n_cols <= size).all()
    at_border = rows[:, 0] | rows[:, -1] | cols[:, 0] | cols[:, -1]
    inside = ~at_border
    assert (n_rows[inside] == size).all() and (n_cols[inside] == size).all()
    # the square stays inside for h - size + 1 of the h centres per axis: P(hangs off) = 0.72 (size 16), 0.34 (7)
    clipped = ((n_rows < size) | (n_cols < size)).double()
    p_clipped = 1 - ((h - size + 1) / h) ** 2
    assert abs(clipped.mean().item() - p_clipped) < Z * binomial_se(p_clipped, len(clipped))


def test_cutout_size_is_checked_against_the_image_side() -> None:
    with pytest.raises(ValueError, match=r"augment\.cutout\.size.*1\.\.28.*100"):
        Cutout(size=100, image_size=28)
    with pytest.raises(ValueError, match=r"size=0: side of the cut-out square must be an integer >= 1$"):
        Cutout(size=0, image_size=28)


# ----------------------------------------------------------------------------- batched path vs per-image path


def test_flip_rate_is_the_same_per_image_and_batched() -> None:
    n, p = 4000, 0.3
    x = same_images(1)[0]
    transform = HFlip(p).per_sample()
    per_image = sum(torch.equal(transform(x), x.flip(-1)) for _ in range(n)) / n
    batched = flip_rate(HFlip(p), n)
    assert abs(per_image - p) < Z * binomial_se(p, n)
    assert abs(per_image - batched) < Z * math.sqrt(2) * binomial_se(p, n)


def test_crop_offsets_have_the_same_mean_and_variance_per_image_and_batched() -> None:
    p, n = 4, 3000
    x = same_images(n)
    padded = F.pad(x[:1], (p, p, p, p))
    transform = RandomCrop(p, image_size=8).per_sample()
    per_image = crop_offsets(torch.stack([transform(x[0]) for _ in range(n)]), padded).double()
    batched = crop_offsets(RandomCrop(p).train()(x), padded).double()
    k = 2 * p + 1  # offsets are discrete uniform on k values: mean p = 4, variance (k^2 - 1) / 12 = 6.67
    mean, var, mu4 = p, (k**2 - 1) / 12, (3 * k**2 - 7) * (k**2 - 1) / 240
    for offsets in (per_image, batched):
        assert (offsets.mean(0) - mean).abs().max() < Z * math.sqrt(var / n)
        # the sample variance has variance (mu4 - var^2) / n, mu4 the fourth central moment
        assert (offsets.var(0) - var).abs().max() < Z * math.sqrt((mu4 - var**2) / n)


def test_cutout_masked_fraction_is_the_same_per_image_and_batched() -> None:
    n, h = 4000, 32
    op = Cutout(16, image_size=h)
    transform = op.per_sample()
    ones = torch.ones(1, h, h)
    per_image = torch.tensor([(transform(ones) == 0).double().mean().item() for _ in range(n)], dtype=torch.float64)
    batched = masked_fraction(op, n, h, h)
    se = math.sqrt(per_image.var().item() / n + batched.var().item() / n)
    assert abs(per_image.mean().item() - batched.mean().item()) < Z * se
    assert abs(per_image.mean().item() - 0.19140625) < Z * per_image.std().item() / math.sqrt(n)


def bar_angle(y: torch.Tensor) -> torch.Tensor:
    """Orientation in degrees (y axis down) of the intensity's principal axis, from its second moments."""
    _, _, h, w = y.shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    m = y[:, 0].double()
    total = m.sum((1, 2))
    dx = xx - ((m * xx).sum((1, 2)) / total)[:, None, None]
    dy = yy - ((m * yy).sum((1, 2)) / total)[:, None, None]
    cxx, cyy, cxy = (m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2))
    return torch.rad2deg(0.5 * torch.atan2(2 * cxy, cxx - cyy))


def horizontal_bar(n: int, side: int = 33) -> torch.Tensor:
    x = torch.zeros(n, 1, side, side)
    x[:, :, side // 2, 4 : side - 4] = 1.0
    return x


def test_rotation_angles_are_uniform_per_image_and_batched() -> None:
    n, degrees = 2000, 15.0
    # the estimator recovers known angles to 0.05 degree (counter-clockwise = negative in y-down coordinates)
    known = torch.linspace(-degrees, degrees, 31)
    assert (bar_angle(rotate(horizontal_bar(31), known)) + known).abs().max() < 0.05
    transform = Rotate(degrees).per_sample()
    bar = horizontal_bar(1)
    per_image = bar_angle(torch.stack([transform(bar[0]) for _ in range(n)]))
    batched = bar_angle(Rotate(degrees).train()(horizontal_bar(n)))
    se = degrees / math.sqrt(12 * n)  # |angle| ~ U(0, degrees): mean 7.5, sd 4.33
    for angles in (per_image, batched):
        assert angles.abs().max() < degrees + 0.05
        assert abs(angles.abs().mean().item() - degrees / 2) < Z * se + 0.05
        assert abs(angles.mean().item()) < Z * degrees / math.sqrt(3 * n)  # symmetric: mean 0, sd 8.66


def test_rotate_matches_torchvision_rotate_on_a_non_square_image() -> None:
    x = torch.rand(2, 3, 12, 20)
    for angle in (30.0, -17.0):
        ours = rotate(x, torch.tensor([angle, angle]))
        theirs = TF.rotate(x, angle, interpolation=TF.InterpolationMode.BILINEAR)
        # torchvision's fill=0 also multiplies the border pixels by their in-image weight: compare the interior
        inside = TF.rotate(torch.ones(1, 1, 12, 20), angle, interpolation=TF.InterpolationMode.BILINEAR) == 1
        assert inside.sum() > 100
        assert torch.allclose(ours * inside, theirs * inside, atol=1e-5)


def test_translate_is_a_whole_pixel_shift_distributed_as_torchvisions() -> None:
    n, h = 3000, 16  # fraction 0.25 of 16: shift round(U(-4, 4)) in {-4..4}, the ends half as likely
    x = same_images(n, h=h, w=h)
    op = Translate(0.25)
    transform = op.per_sample()

    def shifts(y: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x[:1], (4, 4, 4, 4))  # output shifted by (tx, ty) = padded crop at offset (4 - ty, 4 - tx)
        return 4 - crop_offsets(y, padded).flip(1)

    for s in (shifts(torch.stack([transform(x[0]) for _ in range(n)])), shifts(op.train()(x))):
        expected = torch.tensor([0.5] + [1.0] * 7 + [0.5]) / 8
        for axis in range(2):
            freq = torch.bincount(s[:, axis] + 4, minlength=9).double() / n
            assert ((freq - expected).abs() < Z * (expected * (1 - expected) / n).sqrt()).all()


def ramp(n: int, side: int = 32) -> torch.Tensor:
    """Channel 0 = column index, channel 1 = row index: a resized crop's slopes are its box's sides / image sides."""
    x = torch.zeros(n, 2, side, side)
    x[:, 0] = torch.arange(side).float()[None, :]
    x[:, 1] = torch.arange(side).float()[:, None]
    return x


def test_resized_crop_box_area_and_aspect_match_torchvision() -> None:
    n = 3000
    op = RandomResizedCrop(scale=(0.5, 1.0), image_size=32)
    transform = op.per_sample()

    def area_and_log_aspect(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sx = (y[:, 0, :, 17] - y[:, 0, :, 15]).mean(1) / 2  # box width / W, read in the interior
        sy = (y[:, 1, 17, :] - y[:, 1, 15, :]).mean(1) / 2
        return sx * sy, (sx / sy).log()

    a1, r1 = area_and_log_aspect(torch.stack([transform(ramp(1)[0]) for _ in range(n)]))
    a2, r2 = area_and_log_aspect(op.train()(ramp(n)))
    assert a2.min() > 0.5 - 0.01 and a2.max() <= 1.0 + 1e-6
    assert r2.abs().max() < math.log(4 / 3) + 0.01
    for ours, theirs in ((a2, a1), (r2, r1)):
        se = math.sqrt(ours.var().item() / n + theirs.var().item() / n)
        assert abs(ours.mean().item() - theirs.mean().item()) < Z * se
        assert abs(ours.std().item() - theirs.std().item()) < 0.1 * theirs.std().item()


# ---------------------------------------------------------------------------------------------------- colour


def test_color_jitter_refuses_greyscale_images() -> None:
    msg = "augment=color_jitter needs colour images (3 channels); the data has 1 channel"
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)") + "$"):
        ColorJitter(channels=1)
    with pytest.raises(ValueError, match="the data has 1 channel"):
        ColorJitter(input_shape=(1, 28, 28))


def test_brightness_factor_is_drawn_per_sample_in_1_plus_minus_b() -> None:
    n, b = 4000, 0.4
    y = ColorJitter(brightness=b, contrast=0.0, saturation=0.0).train()(torch.full((n, 3, 4, 4), 0.5))
    f = y[:, 0, 0, 0] / 0.5
    assert torch.allclose(y, (0.5 * f).view(n, 1, 1, 1).expand_as(y)), "one factor per image, all pixels alike"
    assert f.min() >= 1 - b and f.max() <= 1 + b
    assert abs(f.std().item() - 2 * b / math.sqrt(12)) < 0.05 * 2 * b / math.sqrt(12)  # uniform: sd 0.231
    per_image = ColorJitter(brightness=b, contrast=0.0, saturation=0.0).per_sample()
    g = torch.tensor([per_image(torch.full((3, 4, 4), 0.5))[0, 0, 0].item() / 0.5 for _ in range(n)])
    assert abs(f.mean().item() - g.mean().item()) < Z * math.sqrt(2 / n) * 2 * b / math.sqrt(12)


def test_adjust_colour_matches_torchvision_functionals_in_order() -> None:
    x = torch.rand(3, 3, 6, 6)
    fb, fc, fs = torch.tensor([0.7, 1.3, 1.0]), torch.tensor([1.2, 0.6, 1.4]), torch.tensor([0.8, 1.4, 0.6])
    ours = adjust_colour(x, fb, fc, fs)
    for n in range(3):
        theirs = TF.adjust_brightness(x[n], fb[n].item())
        theirs = TF.adjust_contrast(theirs, fc[n].item())
        theirs = TF.adjust_saturation(theirs, fs[n].item())
        assert torch.allclose(ours[n], theirs, atol=1e-6)


# -------------------------------------------------------------------------------------------- validation, builder


@pytest.mark.parametrize(
    "make, message",
    [
        # the settings declared in the signatures (trainlab.settings): the argument, its value and what is allowed
        (lambda: HFlip(p=1.5), "p=1.5: probability of a flip must be a number in [0, 1]"),
        (lambda: VFlip(p=-0.1), "p=-0.1: probability of a flip must be a number in [0, 1]"),
        (lambda: RandomCrop(padding=-1), "padding=-1: pixels of padding before the crop must be an integer >= 0"),
        (lambda: RandomCrop(padding=1.5), "padding=1.5: pixels of padding before the crop must be an integer >= 0"),
        (
            lambda: RandomCrop(padding_mode="edge"),
            "padding_mode='edge': how the crop pads must be one of constant, reflect",
        ),
        (
            lambda: Translate(fraction=1.0),
            "fraction=1.0: largest shift, as a fraction of the side must be a number in [0, 1)",
        ),
        (lambda: Rotate(degrees=-1), "degrees=-1: largest rotation must be a number in [0, 180]"),
        (lambda: Rotate(degrees=181), "degrees=181: largest rotation must be a number in [0, 180]"),
        (lambda: ColorJitter(contrast=1.5), "contrast=1.5: contrast jitter must be a number in [0, 1]"),
        (lambda: Cutout(size=0, image_size=28), "size=0: side of the cut-out square must be an integer >= 1"),
        # pairs of values, checked by hand: the config key, the value and the range
        (lambda: RandomResizedCrop(scale=(0.0, 1.0)), "augment.scale.scale must be "),
        (lambda: RandomResizedCrop(scale=(0.8, 0.5)), "augment.scale.scale must be "),
        (lambda: RandomResizedCrop(scale=(0.5, 1.2)), "augment.scale.scale must be "),
    ],
)
def test_constructors_reject_values_out_of_range_naming_the_setting(make, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def pixels_and_normalized(make_cfg, *overrides: str, shape: str = "[3,32,32]"):
    """The augment entries of a composed config, instantiated and put in order as a run does."""
    from trainlab.build import build_techniques
    from trainlab.techniques import Techniques

    cfg = make_cfg("data=synthetic", f"data.input_shape={shape}", *overrides)
    techniques = Techniques(t for _, t in build_techniques(cfg))
    return techniques.pixels, techniques.normalized


def test_techniques_order_pixel_ops_canonically_and_put_cutout_after_preprocessing(make_cfg) -> None:
    selected = ["augment=[cutout,color_jitter,hflip,rotate,crop]", "augment.cutout.size=4", "augment.hflip.p=0.2"]
    pixel, normalized = pixels_and_normalized(make_cfg, *selected, "augment.crop.padding=2")
    assert [type(m) for m in pixel] == [HFlip, RandomCrop, Rotate, ColorJitter]
    assert pixel[0].p == 0.2 and pixel[1].padding == 2
    assert [type(m) for m in normalized] == [Cutout] and normalized[0].size == 4
    reversed_pixel, _ = pixels_and_normalized(make_cfg, "augment=[crop,rotate,hflip,color_jitter,cutout]")
    assert [type(m) for m in reversed_pixel] == [type(m) for m in pixel]
    assert list(ORDER) == ["hflip", "vflip", "crop", "scale", "translate", "rotate", "color_jitter"]
    assert [m.order for m in pixel] == sorted(m.order for m in pixel)


def test_settings_derived_from_the_image_come_from_data_input_shape(make_cfg) -> None:
    pixel, normalized = pixels_and_normalized(make_cfg, "augment=[cutout]", shape="[1,28,28]")
    assert len(pixel) == 0 and normalized[0].size == 14  # half the image side
    pixel, normalized = pixels_and_normalized(make_cfg, "augment=[hflip,crop]", shape="[1,28,28]")
    assert len(pixel) == 2 and len(normalized) == 0 and pixel[1].padding == 4  # an eighth of 28, rounded
    assert per_sample_transform(None) is None


def test_augment_options_refuse_unknown_settings_and_sizes_beyond_the_image(make_cfg) -> None:
    from trainlab.build import instantiate
    from trainlab.errors import ConfigError

    cfg = make_cfg("data=synthetic", "data.input_shape=[3,32,32]", "augment=[crop]", "+augment.crop.paddding=2")
    with pytest.raises(
        ConfigError, match=r"augment\.crop\.paddding=2: .*RandomCrop has no setting 'paddding'; did you mean"
    ):
        instantiate(cfg.augment.crop)
    with pytest.raises(ValueError, match=r"augment\.cutout\.size.*1\.\.28"):
        Cutout(size=100, input_shape=(1, 28, 28))
    with pytest.raises(ValueError, match=r"augment=\[hflip\] needs images \[C, H, W\].*data\.input_shape=\[64\]"):
        HFlip(input_shape=(64,))


def test_per_sample_transform_applies_every_op_to_one_image() -> None:
    pixel = [op(input_shape=(3, 16, 16)) for op in (HFlip, VFlip, RandomCrop, RandomResizedCrop, Translate, Rotate)]
    pixel.append(ColorJitter(input_shape=(3, 16, 16)))
    transform = per_sample_transform(pixel)
    assert len(transform.transforms) == len(ORDER)
    img = torch.rand(3, 16, 16)
    out = transform(img)
    assert out.shape == img.shape and out.dtype == img.dtype and not torch.equal(out, img)


def test_hydra_config_files_build_the_selected_ops(make_cfg) -> None:
    every = ",".join([*ORDER, "cutout"])
    pixel, normalized = pixels_and_normalized(make_cfg, f"augment=[{every}]")
    assert len(pixel) == len(ORDER) and normalized[0].size == 16
    assert pixel[2].padding == 4 and pixel[3].scale == (0.5, 1.0)


# -------------------------------------------------------------------------------------- layout, dtype, no in-place


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op", all_ops(), ids=lambda op: type(op).__name__)
def test_ops_accept_non_contiguous_batches_keep_dtype_and_never_write_the_input(op, dtype: torch.dtype) -> None:
    x = torch.rand(64, 8, 8, 3, dtype=dtype).permute(0, 3, 1, 2)  # channels-last view: not contiguous
    assert not x.is_contiguous()
    before = x.clone()
    torch.manual_seed(1)
    y = op.train()(x)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.equal(x, before)
    torch.manual_seed(1)
    assert torch.allclose(y, op(x.contiguous()), atol=1e-6), "same draws, same result as on a contiguous copy"
    assert not torch.equal(y, x)


def test_crop_padding_defaults_to_an_eighth_of_the_image_side():
    sizes = {side: RandomCrop(padding=None, input_shape=(1, side, side)).padding for side in (8, 28, 32, 64)}
    assert sizes == {8: 1, 28: 4, 32: 4, 64: 8}


def test_augmentation_of_vectors_is_refused_with_one_line() -> None:
    """The second line behind the settings check (trainlab.combinations): vectors have no pixels to flip."""
    for name, op in (("hflip", HFlip), ("crop", RandomCrop), ("cutout", Cutout)):
        with pytest.raises(ValueError, match=rf"augment=\[{name}\] needs images \[C, H, W\].*data.input_shape=\[2\]"):
            op(input_shape=(2,))
