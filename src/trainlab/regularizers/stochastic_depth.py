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

import torch
from torch import Tensor, nn


def survival_probabilities(num_blocks: int, p_L: float = 0.5) -> list[float]:
    """The linear decay rule: p_l = 1 - (l / L) (1 - p_L) for l = 1..L."""
    if not 0.0 < p_L <= 1.0:
        raise ValueError(f"regularizer.stochastic_depth.p_L={p_L} must be in (0, 1]")
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
