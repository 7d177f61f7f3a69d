"""Data augmentation on a whole batch, with the random parameters drawn per sample, selected with ``augment=[...]``.

Every op takes a float batch ``x`` of shape ``[N, C, H, W]`` (values roughly in ``[0, 1]``) on any device and
draws one set of parameters PER SAMPLE, vectorised: ``torch.rand``/``torch.randint(..., device=x.device)`` from
torch's global generator (seed it with ``torch.manual_seed``), no loop over samples, no PIL, no host sync. In eval
mode every op is the identity. No op writes into its input.

Each op's ``per_sample()`` returns the equivalent per-image transform (torchvision ``transforms.v2`` where
torchvision has one) for the DataLoader path; it draws from the same distributions, which the tests check.

Each op is a technique (:mod:`trainlab.techniques`): the pixel-space ops have ``stage = "pixels"`` and act on the
raw images in the canonical order of their ``order`` attribute (hflip, vflip, crop, scale, translate, rotate,
color_jitter) whatever order the config lists them in, so ``augment=[crop,hflip]`` and ``augment=[hflip,crop]`` are
the same augmentation. Cutout has ``stage = "normalized"``: it runs AFTER normalisation (its zeros are the data
mean). Every op takes ``input_shape`` (``${data.input_shape}`` in its YAML) for what it derives from the image
size, and refuses vectors.

Why not torchvision's batched transforms: a v2 transform applied to a batch draws ONE set of parameters for the
whole batch (every image flipped, or none), which is not per-sample augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from trainlab.settings import Setting, checked

ORDER = ("hflip", "vflip", "crop", "scale", "translate", "rotate", "color_jitter")


def _image_shape(input_shape: Sequence[int] | None, option: str) -> tuple[int, int, int] | None:
    """``(C, H, W)`` from ``input_shape``; None when not given; ValueError for vectors."""
    if input_shape is None:
        return None
    if len(input_shape) != 3:
        raise ValueError(
            f"augment=[{option}] needs images [C, H, W] (every augment option flips, crops, rotates, recolours or "
            f"cuts images), but the data are vectors (data.input_shape={list(input_shape)}); drop it: augment=[]"
        )
    c, h, w = (int(v) for v in input_shape)
    return c, h, w


def _check(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"augment.{key} must be {allowed}, got {value!r}")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _affine(x: torch.Tensor, theta: torch.Tensor, mode: str = "bilinear", padding: str = "zeros") -> torch.Tensor:
    """Sample ``x`` at ``theta @ (u, v, 1)`` for each output pixel (normalised coordinates, align_corners=False)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate sample ``n`` counter-clockwise by ``degrees[n]`` about the image centre (bilinear, zero fill).

    Same geometry as torchvision's ``v2.functional.rotate`` (tested against it).
    """
    n, _, h, w = x.shape
    a = torch.deg2rad(degrees.float())
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.zeros(n, 2, 3, device=x.device)
    # output pixel -> input pixel is [[cos, -sin], [sin, cos]] in pixel units (y down); rescaled to [-1, 1] per axis
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return _affine(x, theta)


def adjust_colour(
    x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor
) -> torch.Tensor:
    """torchvision's ``adjust_brightness``, ``adjust_contrast``, ``adjust_saturation`` in that order, one factor each
    per sample (shape ``[N]``), each step clamped to ``[0, 1]`` as torchvision does for float images."""

    def grey(img: torch.Tensor) -> torch.Tensor:  # ITU-R 601-2 luma, torchvision's weights
        return 0.2989 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]

    def blend(img: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        f = f.to(img.dtype).view(-1, 1, 1, 1)
        return (f * img + (1 - f) * other).clamp(0, 1)

    x = blend(x, torch.zeros_like(x), brightness)
    x = blend(x, grey(x).mean(dim=(1, 2, 3), keepdim=True), contrast)
    return blend(x, grey(x), saturation)


class HFlip(nn.Module):
    """Horizontal flip (mirror left-right) of each sample independently with probability ``p``."""

    name = "hflip"
    stage, order = "pixels", ORDER.index("hflip")
    dims = (-1,)

    @checked
    def __init__(
        self,
        p: Annotated[float, Setting("probability of a flip", low=0, high=1)] = 0.5,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _image_shape(input_shape, self.name)
        self.p = float(p)

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        flip = torch.rand(x.shape[0], device=x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(self.dims), x)

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return v2.RandomHorizontalFlip(self.p)


class VFlip(HFlip):
    """Vertical flip (upside down) of each sample independently with probability ``p``."""

    name = "vflip"
    order = ORDER.index("vflip")
    dims = (-2,)

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return v2.RandomVerticalFlip(self.p)


class RandomCrop(nn.Module):
    """Pad by ``padding`` pixels on every side, then crop back to ``H x W`` (torchvision ``RandomCrop(size, padding)``).

    The offset ``(i, j)`` of the crop in the padded image is uniform over ``{0, ..., 2 padding}^2``, drawn per
    sample; ``padding_mode`` is ``constant`` (zeros) or ``reflect``. ``image_size`` (H, W) is only needed by
    :meth:`per_sample` (and lets the constructor check that reflect padding is smaller than the image).
    """

    stage, order = "pixels", ORDER.index("crop")

    @checked
    def __init__(
        self,
        padding: Annotated[int, Setting("pixels of padding before the crop", low=0)] | None = 4,
        padding_mode: Annotated[Literal["constant", "reflect"], Setting("how the crop pads")] = "constant",
        image_size: int | Sequence[int] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        shape = _image_shape(input_shape, "crop")
        if image_size is None and shape is not None:
            image_size = shape[1:]
        if padding is None:  # an eighth of the image side (rounded): CIFAR's 4 on 32x32, 4 on 28x28, 1 on 8x8
            _check(image_size is not None, "crop.padding", padding, "an integer >= 0 (null needs the image size)")
            padding = max(1, round(min(_pair(image_size)) / 8))
        self.image_size = None if image_size is None else _pair(image_size)
        if padding_mode == "reflect" and self.image_size is not None:
            side = min(self.image_size)
            _check(padding < side, "crop.padding", padding, f"in 0..{side - 1} (reflect padding < image side)")
        self.padding, self.padding_mode = padding, padding_mode

    def extra_repr(self) -> str:
        return f"padding={self.padding}, padding_mode={self.padding_mode!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.padding == 0:
            return x
        n, c, h, w = x.shape
        p = self.padding
        padded = F.pad(x, (p, p, p, p), mode=self.padding_mode)
        i = torch.randint(0, 2 * p + 1, (n, 1), device=x.device)
        j = torch.randint(0, 2 * p + 1, (n, 1), device=x.device)
        rows = (i + torch.arange(h, device=x.device)).view(n, 1, h, 1)
        cols = (j + torch.arange(w, device=x.device)).view(n, 1, 1, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
        return padded[batch, chan, rows, cols]

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.image_size is None:
            raise ValueError("RandomCrop.per_sample() needs image_size (H, W) at construction")
        return v2.RandomCrop(self.image_size, padding=self.padding, padding_mode=self.padding_mode)


class RandomResizedCrop(nn.Module):
    """Crop a random box and resize it back to ``H x W`` (bilinear): "random crops and scales".

    Per sample, as torchvision's ``RandomResizedCrop``: area fraction ``a ~ U(scale)``, aspect ``r`` with
    ``log r ~ U(log ratio)``, box ``w = sqrt(a H W r)``, ``h = sqrt(a H W / r)`` pixels, up to 10 tries until the
    box fits once rounded to whole pixels, else torchvision's fallback (the central crop of the allowed aspect
    nearest the image's: the whole image when ``ratio`` contains it); position uniform so the box stays inside.
    Deviation: the box is continuous (sub-pixel) where torchvision rounds it to whole pixels, and bilinear sampling
    at the box's edge blends in the pixel just outside it where torchvision's resize clamps to the box. A fitting
    box is never larger than the image, so resizing only ever upsamples and needs no antialiasing.
    """

    stage, order = "pixels", ORDER.index("scale")

    def __init__(
        self,
        scale: Sequence[float] = (0.5, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        image_size: int | Sequence[int] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        shape = _image_shape(input_shape, "scale")
        if image_size is None and shape is not None:
            image_size = shape[1:]
        s0, s1 = float(scale[0]), float(scale[1])
        r0, r1 = float(ratio[0]), float(ratio[1])
        _check(0 < s0 <= s1 <= 1, "scale.scale", list(scale), "[s0, s1] with 0 < s0 <= s1 <= 1")
        _check(0 < r0 <= r1, "scale.ratio", list(ratio), "[r0, r1] with 0 < r0 <= r1")
        self.scale, self.ratio = (s0, s1), (r0, r1)
        self.image_size = None if image_size is None else _pair(image_size)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, ratio={self.ratio}"

    def forward(self, x: torch.Tensor, tries: int = 10) -> torch.Tensor:
        if not self.training:
            return x
        n, _, height, width = x.shape
        dev = x.device
        area = torch.empty(n, tries, device=dev).uniform_(*self.scale)
        ratio = torch.exp(torch.empty(n, tries, device=dev).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1])))
        # box sides as fractions of W and H: w_px = sqrt(a H W r), h_px = sqrt(a H W / r)
        w, h = torch.sqrt(area * ratio * height / width), torch.sqrt(area / ratio * width / height)
        # a box fits if it does once rounded to whole pixels, as in torchvision (which then crops whole pixels)
        fits = (w * width < width + 0.5) & (h * height < height + 0.5)
        first = fits.int().argmax(dim=1, keepdim=True)  # first fitting try (0 if none fits)
        w, h, found = w.gather(1, first)[:, 0].clamp(max=1), h.gather(1, first)[:, 0].clamp(max=1), fits.any(dim=1)
        # box centre in [-1, 1] coordinates, uniform so that the box stays inside
        cx = torch.where(found, (torch.rand(n, device=dev) * 2 - 1) * (1 - w), 0.0)
        cy = torch.where(found, (torch.rand(n, device=dev) * 2 - 1) * (1 - h), 0.0)
        # fallback: the central crop of the aspect nearest to the image's (the whole image if ratio contains it)
        aspect = width / height
        fallback_w = min(1.0, self.ratio[1] / aspect)
        fallback_h = min(1.0, aspect / self.ratio[0])
        w, h = torch.where(found, w, fallback_w), torch.where(found, h, fallback_h)
        theta = torch.zeros(n, 2, 3, device=dev)
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
        return _affine(x, theta, padding="border")

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        if self.image_size is None:
            raise ValueError("RandomResizedCrop.per_sample() needs image_size (H, W) at construction")
        return v2.RandomResizedCrop(self.image_size, scale=self.scale, ratio=self.ratio, antialias=True)


class Translate(nn.Module):
    """Shift each sample by whole pixels, ``tx = round(U(-f W, f W))``, ``ty = round(U(-f H, f H))``, zero fill.

    torchvision's ``RandomAffine(degrees=0, translate=(f, f))`` draws (and rounds) the shift the same way.
    """

    stage, order = "pixels", ORDER.index("translate")

    @checked
    def __init__(
        self,
        fraction: Annotated[
            float, Setting("largest shift, as a fraction of the side", low=0, high=1, high_open=True)
        ] = 0.125,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _image_shape(input_shape, "translate")
        self.fraction = float(fraction)

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        shift = (torch.rand(2, n, device=x.device) * 2 - 1) * self.fraction
        tx, ty = torch.round(shift[0] * w), torch.round(shift[1] * h)  # whole pixels
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2], theta[:, 1, 2] = -2 * tx / w, -2 * ty / h
        return _affine(x, theta, mode="nearest")  # whole-pixel shifts: nearest copies pixels exactly

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return v2.RandomAffine(degrees=0, translate=(self.fraction, self.fraction), fill=None)


class Rotate(nn.Module):
    """Rotate each sample about its centre by an angle ``~ U(-degrees, degrees)`` (bilinear, zero fill)."""

    stage, order = "pixels", ORDER.index("rotate")

    @checked
    def __init__(
        self,
        degrees: Annotated[float, Setting("largest rotation", low=0, high=180)] = 15.0,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        _image_shape(input_shape, "rotate")
        self.degrees = float(degrees)

    def extra_repr(self) -> str:
        return f"degrees={self.degrees}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return rotate(x, (torch.rand(x.shape[0], device=x.device) * 2 - 1) * self.degrees)

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        # fill=None is grid_sample's zero padding; torchvision's fill=0 also darkens the bilinear border pixels
        return v2.RandomRotation(self.degrees, interpolation=v2.InterpolationMode.BILINEAR, fill=None)


class ColorJitter(nn.Module):
    """Colour jitter: brightness, contrast, saturation factors ``~ U(1 - b, 1 + b)`` etc. per sample.

    Applied in that fixed order with torchvision's functional definitions: brightness scales the image, contrast
    blends it with the mean of its greyscale image, saturation blends it with its greyscale image; each step is
    clamped to ``[0, 1]``. (torchvision's ``ColorJitter`` also shuffles the order per image; here it is fixed, and
    there is no hue.) Needs colour images: ``channels`` must be 3.
    """

    stage, order = "pixels", ORDER.index("color_jitter")

    @checked
    def __init__(
        self,
        brightness: Annotated[float, Setting("brightness jitter", low=0, high=1)] = 0.4,
        contrast: Annotated[float, Setting("contrast jitter", low=0, high=1)] = 0.4,
        saturation: Annotated[float, Setting("saturation jitter", low=0, high=1)] = 0.4,
        channels: Annotated[int, Setting("channels of the images", low=1)] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        shape = _image_shape(input_shape, "color_jitter")
        channels = channels if channels is not None else (shape[0] if shape is not None else 3)
        if channels != 3:
            s = "" if channels == 1 else "s"
            raise ValueError(
                f"augment=color_jitter needs colour images (3 channels); the data has {channels} channel{s}"
            )
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)

    def extra_repr(self) -> str:
        return f"brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        u = torch.rand(3, x.shape[0], device=x.device) * 2 - 1  # one row per property, one column per sample
        return adjust_colour(x, 1 + u[0] * self.brightness, 1 + u[1] * self.contrast, 1 + u[2] * self.saturation)

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        # one v2.ColorJitter per property keeps the order fixed (a single one would shuffle it)
        return v2.Compose(
            [
                v2.ColorJitter(brightness=self.brightness),
                v2.ColorJitter(contrast=self.contrast),
                v2.ColorJitter(saturation=self.saturation),
            ]
        )


class Cutout(nn.Module):
    """Cutout (DeVries & Taylor 2017, "Improved Regularization of CNNs with Cutout"): one square zeroed per sample.

    The centre ``(cy, cx)`` is uniform over ALL pixels, and the square ``[cy - size//2, cy - size//2 + size)`` (same
    for x) is clipped to the image, so it may hang off the border: on 32 x 32 with ``size = 16`` the expected masked
    area is ``(14/32)^2 = 19.1 %``, not 25 %. Apply it AFTER normalisation, so the zeros are the data mean, as in the
    paper. ``size`` defaults to half of ``image_size`` (the paper's 16 on 32 x 32). Deviation: for odd ``size`` the
    paper's code zeroes a square of side ``size - 1``; here the side is always ``size``. Vectorised: the mask is
    ``arange(H)`` and ``arange(W)`` compared with each sample's bounds.
    torchvision's ``RandomErasing`` keeps the patch inside the image, so it is not cutout.
    """

    stage = "normalized"
    #: acts on images after preprocessing: a preprocessing that gives vectors (PCA) is refused
    needs_images = True

    @checked
    def __init__(
        self,
        size: Annotated[int, Setting("side of the cut-out square", low=1)] | None = None,
        image_size: Annotated[int, Setting("side of the images", low=1)] | None = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        shape = _image_shape(input_shape, "cutout")
        if image_size is None:
            image_size = max(shape[1:]) if shape is not None else 32
        size = max(1, image_size // 2) if size is None else size
        # the upper bound depends on the image size (two values): checked here, not declared
        _check(size <= image_size, "cutout.size", size, f"an integer in 1..{image_size} (the image side)")
        self.size = size

    def extra_repr(self) -> str:
        return f"size={self.size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        n, _, h, w = x.shape
        top = torch.randint(0, h, (n, 1), device=x.device) - self.size // 2
        left = torch.randint(0, w, (n, 1), device=x.device) - self.size // 2
        rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (rows >= top) & (rows < top + self.size)  # [N, H]
        in_cols = (cols >= left) & (cols < left + self.size)  # [N, W]
        return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)

    def per_sample(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return PerSampleCutout(self.size)


class PerSampleCutout:
    """:class:`Cutout` on one ``[C, H, W]`` image, for the DataLoader path."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        top = int(torch.randint(0, h, ())) - self.size // 2
        left = int(torch.randint(0, w, ())) - self.size // 2
        out = img.clone()
        out[..., max(top, 0) : max(top + self.size, 0), max(left, 0) : max(left + self.size, 0)] = 0
        return out

    def __repr__(self) -> str:
        return f"PerSampleCutout(size={self.size})"


def per_sample_transform(pixel: Sequence[nn.Module] | None) -> v2.Compose | None:
    """The per-image (DataLoader) equivalent of the batched pixel ops: ``v2.Compose`` of their ``per_sample()``."""
    if pixel is None or len(pixel) == 0:
        return None
    return v2.Compose([op.per_sample() for op in pixel])
