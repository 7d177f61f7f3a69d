"""Maxout (Goodfellow, Warde-Farley, Mirza, Courville, Bengio, ICML 2013).

A maxout unit outputs the maximum of k affine functions of its input: h_i(x) = max_{j=1..k} (W_ij x + b_ij).
Torch has no maxout layer. Here it is written as the layer before it, widened k times, followed by
:class:`Maxout`, which takes the maximum over each group of k consecutive features (channels in a CNN, so the
maximum is channel-wise at every pixel). With k=2 and one piece fixed at zero, max(Wx+b, 0) is ReLU.

In the pre-activation ResNet the activation follows a BatchNorm instead of a linear layer; there
:class:`MaxoutNorm2d` widens the BatchNorm's affine part k times: h = max_j (gamma_j * x_hat + beta_j), a maxout
unit whose pieces are per-channel affine maps of the normalised input. With k=2, (gamma_1, beta_1) = (1, 0) and
the second piece at zero it is exactly BatchNorm -> ReLU, which is how it is initialised.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from trainlab.settings import Setting, checked

#: ``activation.pieces``: one piece would be a linear unit
Pieces = Annotated[int, Setting("maxout's pieces", low=2)]


class Maxout(nn.Module):
    """Maximum over groups of ``pieces`` consecutive features along ``dim`` (features = units x pieces)."""

    @checked
    def __init__(self, pieces: Annotated[int, Setting("pieces per maxout unit", low=1)] = 2, dim: int = 1) -> None:
        super().__init__()
        self.pieces = pieces
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        features = x.shape[self.dim]
        if features % self.pieces:
            raise ValueError(f"Maxout: {features} features do not split into groups of {self.pieces} pieces")
        return x.unflatten(self.dim, (features // self.pieces, self.pieces)).amax(dim=self.dim + 1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


class MaxoutNorm2d(nn.Module):
    """BatchNorm2d whose affine part has ``pieces`` (gamma, beta) pairs per channel, followed by their maximum."""

    @checked
    def __init__(self, channels: int, pieces: Pieces = 2) -> None:
        super().__init__()
        self.pieces = pieces
        self.norm = nn.BatchNorm2d(channels, affine=False)
        weight = torch.zeros(pieces, channels)
        weight[0] = 1.0  # piece 1: the identity of x_hat; piece 2 (and more): zero -> BatchNorm + ReLU at start
        if pieces > 2:  # further pieces start as small random slopes so that they do not stay identical
            weight[2:] = 0.1 * torch.randn(pieces - 2, channels)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(pieces, channels))

    def forward(self, x: Tensor) -> Tensor:
        x_hat = self.norm(x).unsqueeze(1)  # [N, 1, C, H, W]
        pieces = x_hat * self.weight[None, :, :, None, None] + self.bias[None, :, :, None, None]
        return pieces.amax(dim=1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
