"""L1, L2 and elastic-net weight penalties, selected with ``regularizer=[l1]``, ``[l2]`` or ``[elastic_net]``.

The penalty is added to the data loss: loss = CE + l1 * sum|w| + l2 * sum(w^2), summed over the weights of
linear and convolutional layers. Biases and the parameters of normalisation layers (BatchNorm, LayerNorm,
GroupNorm, MaxoutNorm) and of PReLU are excluded by default (``include_bias``/``include_norm`` to include them):
they do not grow with the input and penalising them only hurts (He et al. 2015 likewise leave PReLU's slope
undecayed). It is logged as ``train/reg_loss``.

Relation to the optimizers' ``weight_decay``: SGD's weight_decay=l adds l * w to the gradient, the gradient of
(l / 2) * sum(w^2); so ``regularizer.l2.weight=l`` equals SGD ``weight_decay=2l`` (apart from the biases and
norms that weight_decay also decays). Adam's weight_decay is this L2 term fed through Adam's scaling; AdamW's
decoupled decay is not a loss term at all.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import Tensor, nn

from trainlab.activations.maxout import MaxoutNorm2d
from trainlab.settings import Setting, checked

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, MaxoutNorm2d, nn.PReLU)


def penalized_parameters(net: nn.Module, include_bias: bool = False, include_norm: bool = False) -> list[Tensor]:
    """The parameters a weight penalty applies to."""
    chosen, seen = [], set()
    for module in net.modules():
        if getattr(module, "vectorized", False):  # an IndependentEnsemble's stacked parameters: judge by the names
            base = module._base[0]
            for name, param in zip(module._names, module.stacked, strict=True):
                owner = base.get_submodule(name.rpartition(".")[0])
                if (isinstance(owner, NORMS) and not include_norm) or (name.endswith("bias") and not include_bias):
                    seen.add(id(param))
                    continue
                seen.add(id(param))
                chosen.append(param)
            continue
        is_norm = isinstance(module, NORMS)
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if is_norm and not include_norm:
                continue
            if name == "bias" and not include_bias:
                continue
            chosen.append(param)
    return chosen


class WeightPenalty:
    """``l1 * sum|w| + l2 * sum(w^2)`` over :func:`penalized_parameters`: a term added to the training loss."""

    stage = "loss"

    @checked
    def __init__(
        self,
        l1: Annotated[float, Setting("L1 penalty weight", low=0)] = 0.0,
        l2: Annotated[float, Setting("L2 penalty weight", low=0)] = 0.0,
        include_bias: Annotated[bool, Setting("whether the penalty includes biases")] = False,
        include_norm: Annotated[bool, Setting("whether the penalty includes normalization weights")] = False,
    ) -> None:
        self.l1, self.l2 = l1, l2
        self.include_bias, self.include_norm = include_bias, include_norm

    def __call__(self, net: nn.Module) -> Tensor:
        params = penalized_parameters(net, self.include_bias, self.include_norm)
        total = torch.zeros((), device=params[0].device if params else None)
        if self.l1:
            total = total + self.l1 * sum(p.abs().sum() for p in params)
        if self.l2:
            total = total + self.l2 * sum(p.pow(2).sum() for p in params)
        return total

    def __repr__(self) -> str:
        return f"WeightPenalty(l1={self.l1}, l2={self.l2})"


class L1(WeightPenalty):
    """``regularizer=[l1]``: ``weight * sum|w|``."""

    @checked
    def __init__(
        self,
        weight: Annotated[float, Setting("L1 penalty weight", low=0)] = 1e-5,
        include_bias: Annotated[bool, Setting("whether the l1 penalty includes biases")] = False,
        include_norm: Annotated[bool, Setting("whether the l1 penalty includes normalization weights")] = False,
    ) -> None:
        super().__init__(l1=weight, include_bias=include_bias, include_norm=include_norm)


class L2(WeightPenalty):
    """``regularizer=[l2]``: ``weight * sum(w^2)`` (SGD's ``weight_decay=l`` is the gradient of ``(l/2) sum(w^2)``:
    ``weight=l`` equals ``weight_decay=2l``)."""

    @checked
    def __init__(
        self,
        weight: Annotated[float, Setting("L2 penalty weight", low=0)] = 1e-4,
        include_bias: Annotated[bool, Setting("whether the l2 penalty includes biases")] = False,
        include_norm: Annotated[bool, Setting("whether the l2 penalty includes normalization weights")] = False,
    ) -> None:
        super().__init__(l2=weight, include_bias=include_bias, include_norm=include_norm)


class ElasticNet(WeightPenalty):
    """``regularizer=[elastic_net]`` (Zou & Hastie 2005): ``l1_weight * sum|w| + l2_weight * sum(w^2)``."""

    @checked
    def __init__(
        self,
        l1_weight: Annotated[float, Setting("elastic net's L1 weight", low=0)] = 1e-5,
        l2_weight: Annotated[float, Setting("elastic net's L2 weight", low=0)] = 1e-4,
        include_bias: Annotated[bool, Setting("whether the elastic_net penalty includes biases")] = False,
        include_norm: Annotated[
            bool, Setting("whether the elastic_net penalty includes normalization weights")
        ] = False,
    ) -> None:
        super().__init__(l1=l1_weight, l2=l2_weight, include_bias=include_bias, include_norm=include_norm)
