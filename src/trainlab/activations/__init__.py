"""Activation functions, selected with ``activation=<name>`` (configs/activation/<name>.yaml).

A config instantiates an :class:`Activation`: calling it makes a fresh ``nn.Module`` for one place in a network,
and it tells the network and the initialisation what they need to know about it: ``pieces`` (maxout widens the
layer before it that many times), ``gain`` (the Kaiming gain that keeps the activations' scale, He et al. 2015)
and ``preferred_init`` (SELU is self-normalising only with LeCun-normal weights, Klambauer et al. 2017).

| name | definition | torch module |
|---|---|---|
| sigmoid | 1 / (1 + e^-x) | nn.Sigmoid |
| tanh | tanh(x) | nn.Tanh |
| relu | max(0, x) | nn.ReLU |
| leaky_relu | max(a x, x), a = ``negative_slope`` (0.01) | nn.LeakyReLU |
| prelu | max(a x, x), a learned, starting at ``negative_slope`` (0.25); one a per layer | nn.PReLU |
| elu | x if x > 0 else alpha (e^x - 1), ``alpha`` = 1 | nn.ELU |
| selu | lambda * elu(x, alpha), lambda ~ 1.0507, alpha ~ 1.6733 (fixed) | nn.SELU |
| maxout | max over ``pieces`` (k = 2) affine pieces | :class:`~trainlab.activations.maxout.Maxout` |
| gelu | x * Phi(x) (``approximate``: none or tanh) | nn.GELU |
| silu | x * sigmoid(x) | nn.SiLU |
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

from torch import nn

from trainlab.activations.maxout import Maxout, Pieces
from trainlab.settings import Setting, checked

Name = Literal["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "maxout", "gelu", "silu"]
NAMES: tuple[str, ...] = get_args(Name)


class Activation:
    """A named activation: ``Activation("leaky_relu", negative_slope=0.1)()`` -> ``nn.LeakyReLU(0.1)``.

    Args:
        name: one of :data:`NAMES`.
        negative_slope: slope for x < 0 (leaky_relu), or its starting value (prelu).
        alpha: ELU's saturation value for x -> -inf.
        pieces: maxout's k.
        approximate: GELU's ``none`` (exact) or ``tanh``.
        preferred_init: the ``init`` scheme used when ``init=default`` (``lecun`` for selu); ``null`` keeps torch's.
    """

    @checked
    def __init__(
        self,
        name: Annotated[Name, Setting("the activation")] = "relu",
        negative_slope: Annotated[float, Setting("slope for x < 0", low=0)] | None = None,
        alpha: Annotated[float, Setting("ELU's saturation value", low=0, low_open=True)] = 1.0,
        pieces: Pieces = 2,
        approximate: Annotated[Literal["none", "tanh"], Setting("GELU's approximation")] = "none",
        preferred_init: str | None = None,
    ) -> None:
        self.name = name
        self.negative_slope = negative_slope if negative_slope is not None else (0.25 if name == "prelu" else 0.01)
        self.alpha = alpha
        self.pieces = pieces if name == "maxout" else 1
        self.approximate = approximate
        self.preferred_init = preferred_init

    def __call__(self) -> nn.Module:
        match self.name:
            case "sigmoid":
                return nn.Sigmoid()
            case "tanh":
                return nn.Tanh()
            case "relu":
                return nn.ReLU()
            case "leaky_relu":
                return nn.LeakyReLU(self.negative_slope)
            case "prelu":
                return nn.PReLU(num_parameters=1, init=self.negative_slope)
            case "elu":
                return nn.ELU(alpha=self.alpha)
            case "selu":
                return nn.SELU()
            case "maxout":
                return Maxout(self.pieces)
            case "gelu":
                return nn.GELU(approximate=self.approximate)
            case _:
                return nn.SiLU()

    @property
    def gain(self) -> float:
        """Kaiming gain: std = gain / sqrt(fan). ReLU-like: sqrt(2); leaky/PReLU: sqrt(2 / (1 + a^2)); tanh: 5/3
        (torch's choice); sigmoid, SELU (LeCun, not torch's 3/4 which breaks self-normalisation) and maxout: 1
        (max of two independent zero-mean pieces keeps the second moment: E[max(z1, z2)^2] = E[z^2])."""
        if self.name in ("relu", "elu", "gelu", "silu"):
            return math.sqrt(2.0)
        if self.name in ("leaky_relu", "prelu"):
            return math.sqrt(2.0 / (1.0 + self.negative_slope**2))
        if self.name == "tanh":
            return 5.0 / 3.0
        return 1.0

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"
