"""Fractional max-pooling (Graham 2014, "Fractional Max-Pooling", arXiv:1412.6071).

Each spatial axis of length ``N_in`` is reduced to ``N_out = floor(N_in * ratio)`` (Graham's ``alpha = 1 / ratio``,
in ``(1, 2]``) by pooling regions given by an increasing integer sequence ``0 = a_0 < a_1 < ... < a_Nout = N_in``
whose increments are all 1 or 2 (so exactly ``N_in - N_out`` of them are 2).  Disjoint regions are
``P_i = [a_{i-1}, a_i - 1]``, overlapping ones ``P_i = [a_{i-1}, a_i]`` (clipped to ``N_in - 1``), and
``output[i, j] = max(input[P_i x Q_j])`` with independent sequences for rows and columns.  Two interval kinds:

* ``random``: the increments are a uniformly random permutation of ``N_in - N_out`` twos and ``2 N_out - N_in`` ones;
* ``pseudo_random``: ``a_i = ceil(alpha (i + u))`` with ``u ~ U(0, 1)``, shifted so ``a_0 = 0``, and with
  ``alpha = N_in / N_out`` so that ``a_Nout = N_in`` exactly.

Deviations from the paper:

* Graham draws new sequences for every image; here one pair (rows, columns) is drawn per forward call, shared by
  every sample and channel of the mini-batch.  It is a simplification for speed (torch's implementation draws per
  sample).
* Increments of 1 or 2 cannot cover an odd ``N_in`` with fewer than ``ceil(N_in / 2)`` regions, so the output size is
  ``max(floor(N_in * ratio), ceil(N_in / 2))``: it differs from ``floor(N_in * ratio)`` only for odd ``N_in`` with
  ``ratio`` just above 0.5 (e.g. 13 -> 7 at ratio 0.5).  :func:`fractional_output_size` gives it.

Evaluation is deterministic: in eval mode the sequences come from a private generator seeded with ``pass_index``
(0 by default) at every forward call.  Graham averages the predictions of several test passes with different pooling
regions; the module does not average itself.  A network that wants ``test_samples = k`` passes sets
``pass_index = 0, 1, ..., k - 1`` (see :func:`set_pass_index`) before each pass and averages the outputs: each pass
uses different but fixed regions, so evaluation stays reproducible.

``torch.nn.FractionalMaxPool2d`` is not used: it only offers pseudo-random, overlapping ``kernel_size`` windows, with
neither the ``random`` (permutation) intervals nor disjoint regions.
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Annotated, Literal, get_args

import torch
from torch import nn

from trainlab.settings import Setting, checked
from trainlab.techniques import LayerRegularizer

IntervalKind = Literal["random", "pseudo_random"]
INTERVALS: tuple[str, ...] = get_args(IntervalKind)

#: the settings of :class:`FractionalMaxPool2d` and :class:`FractionalPooling` (``regularizer.fractional_pool.*``)
Ratio = Annotated[float, Setting("fractional pooling's output/input ratio", low=0.5, high=1, high_open=True)]
Intervals = Annotated[IntervalKind, Setting("fractional pooling's intervals")]
Overlapping = Annotated[bool, Setting("overlapping pooling regions")]
TestSamples = Annotated[int, Setting("test passes averaged", low=1)]


def fractional_output_size(n_in: int, ratio: float) -> int:
    """Output length of one axis of length ``n_in``: ``floor(n_in * ratio)``, at least ``ceil(n_in / 2)`` and 1."""
    return max(math.floor(n_in * ratio), math.ceil(n_in / 2), 1)


def fractional_intervals(
    n_in: int, n_out: int, intervals: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Region boundaries ``a_0 = 0 < ... < a_{n_out} = n_in`` (int64, length ``n_out + 1``), increments 1 or 2."""
    if not math.ceil(n_in / 2) <= n_out <= n_in:
        raise ValueError(f"cannot pool {n_in} positions into {n_out} regions of 1 or 2 positions")
    if intervals == "random":
        steps = torch.ones(n_out, dtype=torch.int64)
        steps[: n_in - n_out] = 2
        steps = steps[torch.randperm(n_out, generator=generator)]
    elif intervals == "pseudo_random":
        # ceil(n_in / n_out * (i + u)) = q_i + ceil(r_i / n_out + c) with n_in * i = q_i * n_out + r_i, c = alpha * u:
        # q and r are exact integers, and i = 0 and i = n_out share r = 0, so a_{n_out} - a_0 = n_in exactly.
        u = torch.rand((), generator=generator, dtype=torch.float64)
        scaled = n_in * torch.arange(n_out + 1, dtype=torch.int64)
        a = scaled // n_out + torch.ceil((scaled % n_out).double() / n_out + u * n_in / n_out).long()
        steps = a.diff()
    else:
        raise ValueError(f"unknown interval kind {intervals!r}; expected one of {', '.join(INTERVALS)}")
    assert bool(((steps == 1) | (steps == 2)).all()), f"increments must be 1 or 2, got {steps.tolist()}"
    return torch.cat([steps.new_zeros(1), steps.cumsum(0)])


def _pool_axis(x: torch.Tensor, bounds: torch.Tensor, dim: int, overlapping: bool) -> torch.Tensor:
    """Max of ``x`` over the regions given by ``bounds`` along ``dim``: at most 3 gathers, no loop over regions."""
    n_in = x.shape[dim]
    bounds = bounds.to(x.device)
    starts = bounds[:-1]
    ends = bounds[1:].clamp(max=n_in - 1) if overlapping else bounds[1:] - 1
    width = int((ends - starts).max()) + 1
    # offset k picks the (k+1)-th element of each region, repeating its last element in shorter regions
    picks = [x.index_select(dim, torch.minimum(starts + k, ends)) for k in range(width)]
    return reduce(torch.maximum, picks)


def _pool(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, overlapping: bool = False) -> torch.Tensor:
    """Fractional max-pool ``x`` ([N, C, H, W]) with row boundaries ``rows`` and column boundaries ``cols``."""
    return _pool_axis(_pool_axis(x, rows, 2, overlapping), cols, 3, overlapping)


class FractionalMaxPool2d(nn.Module):
    """Fractional max-pooling of [N, C, H, W] inputs to ``floor(H * ratio) x floor(W * ratio)`` (see the module doc).

    Attributes: ``ratio``, ``intervals``, ``overlapping``, ``test_samples`` (how many eval passes a network should
    average; not used by the module itself) and ``pass_index`` (seed of the eval-mode regions, set by the network
    before each of its ``test_samples`` passes).
    """

    @checked
    def __init__(
        self,
        ratio: Ratio = 2**-0.5,
        intervals: Intervals = "random",
        overlapping: Overlapping = False,
        test_samples: TestSamples = 1,
    ) -> None:
        super().__init__()
        self.ratio = float(ratio)
        self.intervals = intervals
        self.overlapping = overlapping
        self.test_samples = int(test_samples)
        self.pass_index = 0

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the output for an input of ``height x width``."""
        return fractional_output_size(height, self.ratio), fractional_output_size(width, self.ratio)

    def boundaries(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw row and column boundaries: from the global RNG in training, from a generator seeded with
        ``pass_index`` in eval mode."""
        generator = None if self.training else torch.Generator().manual_seed(self.pass_index)
        h_out, w_out = self.output_size(height, width)
        rows = fractional_intervals(height, h_out, self.intervals, generator)
        cols = fractional_intervals(width, w_out, self.intervals, generator)
        return rows, cols

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"FractionalMaxPool2d expects [N, C, H, W] input, got shape {tuple(x.shape)}")
        rows, cols = self.boundaries(x.shape[2], x.shape[3])
        return _pool(x, rows, cols, self.overlapping)

    def extra_repr(self) -> str:
        return (
            f"ratio={self.ratio:.4g}, intervals={self.intervals}, overlapping={self.overlapping}, "
            f"test_samples={self.test_samples}"
        )


def set_pass_index(model: nn.Module, index: int) -> None:
    """Set ``pass_index`` of every :class:`FractionalMaxPool2d` in ``model`` (before test pass ``index``)."""
    for module in model.modules():
        if isinstance(module, FractionalMaxPool2d):
            module.pass_index = index


class FractionalPooling(LayerRegularizer):
    """``regularizer=[fractional_pool]``: networks take it as their ``fractional_pool`` argument and call
    ``fractional_pool()`` for a :class:`FractionalMaxPool2d` in place of each pooling layer."""

    argument = "fractional_pool"

    @checked
    def __init__(
        self,
        ratio: Ratio = 2**-0.5,
        intervals: Intervals = "random",
        overlapping: Overlapping = False,
        test_samples: TestSamples = 1,
    ) -> None:
        self.ratio, self.intervals, self.overlapping, self.test_samples = ratio, intervals, overlapping, test_samples

    def __call__(self) -> FractionalMaxPool2d:
        return FractionalMaxPool2d(self.ratio, self.intervals, self.overlapping, self.test_samples)
