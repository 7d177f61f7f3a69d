"""Mixing regularizers: mixup, CutMix (``regularizer=[mixup]``, ``[cutmix]``) and label smoothing.

* mixup (Zhang, Cisse, Dauphin, Lopez-Paz, ICLR 2018): lambda ~ Beta(alpha, alpha), one per mini-batch; each
  example is mixed with a partner from a random permutation of the batch: x = lambda x_i + (1 - lambda) x_j, and
  the targets the same way. alpha = 0 means no mixup at all (the batch is returned unchanged; torchvision's MixUp
  raises on alpha = 0 instead).
* CutMix (Yun et al., ICCV 2019): lambda ~ Beta(alpha, alpha); a box of area (1 - lambda) H W, centre uniform in
  the image and clipped at the border, is pasted from the partner; lambda is then corrected to the box's actual
  area, and the targets are mixed with it. One box per mini-batch, as in the paper's code.
* label smoothing (Szegedy et al. 2016): the training target becomes (1 - eps) one_hot + eps / C (torch's
  ``cross_entropy(label_smoothing=eps)``); validation and test losses stay plain cross-entropy.

When mixup and CutMix are both selected, each mini-batch uses one of them, chosen with probability 1/2.
Accuracy is always measured against the un-mixed hard labels. Random draws come from torch's global CPU generator
(lambda, the box) and the batch's device (the permutation), so no host synchronisation is needed.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import Tensor

from trainlab.settings import Setting, checked


def sample_lambda(alpha: float) -> float:
    """lambda ~ Beta(alpha, alpha), from torch's global CPU generator."""
    return float(torch.distributions.Beta(alpha, alpha).sample())


class Mixup:
    """mixup (Zhang et al. 2018): ``lambda ~ Beta(alpha, alpha)`` per batch, inputs and targets mixed with a
    partner from a random permutation of the batch (see the module docstring)."""

    stage, exclusive = "batch", True

    @checked
    def __init__(self, alpha: Annotated[float, Setting("mixup's Beta(alpha, alpha)", low=0)] = 0.2) -> None:
        self.alpha = alpha

    @property
    def active(self) -> bool:
        """alpha = 0 is exactly no mixing: the batch is left as it is."""
        return self.alpha > 0

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if self.alpha == 0:
            return x, target
        lam = sample_lambda(self.alpha)
        perm = torch.randperm(len(x), device=x.device)
        return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


class CutMix:
    """CutMix (Yun et al. 2019): a box of area ``(1 - lambda)`` pasted from a partner, targets mixed by the box's
    actual area (see the module docstring)."""

    stage, exclusive = "batch", True

    @checked
    def __init__(self, alpha: Annotated[float, Setting("CutMix's Beta(alpha, alpha)", low=0)] = 1.0) -> None:
        self.alpha = alpha

    @property
    def active(self) -> bool:
        """alpha = 0 is exactly no mixing: the batch is left as it is."""
        return self.alpha > 0

    @staticmethod
    def box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
        """(y1, y2, x1, x2) of a box of area about (1 - lam) H W around a uniform centre, clipped to the image."""
        cut = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(height * cut), int(width * cut)
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        return y1, y2, x1, x2

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if self.alpha == 0:
            return x, target
        if x.ndim != 4:
            raise ValueError("regularizer=[cutmix] needs images [N, C, H, W]; this input is not one (preprocess=pca?)")
        lam = sample_lambda(self.alpha)
        height, width = x.shape[-2:]
        y1, y2, x1, x2 = self.box(height, width, lam)
        perm = torch.randperm(len(x), device=x.device)
        mixed = x.clone()
        mixed[:, :, y1:y2, x1:x2] = x[perm][:, :, y1:y2, x1:x2]
        lam = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)  # the box's actual share
        return mixed, lam * target + (1 - lam) * target[perm]


class LabelSmoothing:
    """``regularizer=[label_smoothing]`` (Szegedy et al. 2016): the training target becomes
    ``(1 - eps) target + eps / C`` (after mixup/CutMix when selected), the same loss as torch's
    ``cross_entropy(label_smoothing=eps)``; validation and test losses stay plain cross-entropy."""

    stage, order = "batch", 1  # after the mixing techniques

    @checked
    def __init__(self, eps: Annotated[float, Setting("label smoothing", low=0, high=1, high_open=True)] = 0.1) -> None:
        self.eps = float(eps)

    @property
    def active(self) -> bool:
        return self.eps > 0

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return x, (1 - self.eps) * target + self.eps / target.shape[-1]
