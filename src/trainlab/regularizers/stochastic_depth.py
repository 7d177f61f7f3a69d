"""Stochastic depth (Huang, Sun, Liu, Sedra, Weinberger, ECCV 2016), selected with ``regularizer=[stochastic_depth]``.

Each residual block l = 1..L survives a mini-batch with probability p_l and is skipped otherwise (its output is
then the shortcut alone, and its branch is not computed: the paper's training-time saving). The survival
probabilities decay linearly with depth, p_l = 1 - (l / L) (1 - p_L), with p_L = 0.5 by default
(``regularizer.stochastic_depth.p_L``). At test time every block runs and its branch is scaled by p_l, the
expected contribution during training. One Bernoulli draw per block per mini-batch, from torch's global CPU
generator (seeded by ``seed``), so no device synchronisation is needed.

Under DDP a skipped block leaves parameters without gradients: use ``trainer.strategy=ddp_find_unused_parameters_true``.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from trainlab.settings import Setting, checked
from trainlab.techniques import LayerRegularizer

#: ``regularizer.stochastic_depth.p_L``
LastSurvival = Annotated[float, Setting("survival probability of the last block", low=0, high=1, low_open=True)]


@checked
def survival_probabilities(num_blocks: int, p_L: LastSurvival = 0.5) -> list[float]:
    """The linear decay rule: p_l = 1 - (l / L) (1 - p_L) for l = 1..L."""
    return [1.0 - (block / num_blocks) * (1.0 - p_L) for block in range(1, num_blocks + 1)]


class StochasticDepth(nn.Module):
    """Training: ``shortcut + branch(x)`` with probability ``survival``, else ``shortcut``.
    Eval: ``shortcut + survival * branch(x)``."""

    def __init__(self, branch: nn.Module, survival: float = 1.0) -> None:
        super().__init__()
        self.branch = branch
        self.survival = survival

    def forward(self, x: Tensor, shortcut: Tensor) -> Tensor:
        if self.survival >= 1.0:
            return shortcut + self.branch(x)
        if self.training:
            if torch.rand(()) < self.survival:
                return shortcut + self.branch(x)
            return shortcut
        return shortcut + self.survival * self.branch(x)

    def extra_repr(self) -> str:
        return f"survival={self.survival:.4f}"


class LinearDecay(LayerRegularizer):
    """``regularizer=[stochastic_depth]``: residual networks take it as their ``stochastic_depth`` argument and
    wrap residual block l of L in :class:`StochasticDepth` with survival ``survival(L)[l - 1]`` (the linear decay
    rule of :func:`survival_probabilities`)."""

    argument = "stochastic_depth"

    @checked
    def __init__(self, p_L: LastSurvival = 0.5) -> None:  # noqa: N803 - the paper's name
        self.p_L = float(p_L)

    def survival(self, num_blocks: int) -> list[float]:
        return survival_probabilities(num_blocks, self.p_L)
