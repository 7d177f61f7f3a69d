"""Weight initialisation, selected with ``init=<scheme>`` (configs/init/<scheme>.yaml).

Applied to every ``nn.Linear`` and ``nn.Conv*d`` of the network after it is built (normalisation layers keep
their own init). fan_in = inputs per output unit (in_features, or in_channels * kernel area), fan_out likewise.

| scheme | weights | reference |
|---|---|---|
| default | torch's own layer init (Kaiming-uniform with a = sqrt(5)) | |
| zeros | 0: every unit of a layer computes the same thing and gets the same gradient (symmetry) | the lecture |
| small_random | N(0, std^2), ``init.std`` = 0.01: activations shrink layer by layer in a deep net | the lecture |
| xavier | the lecture's "Xavier": std = 1 / sqrt(fan_in) | the lecture (CS231n) |
| glorot | var = 2 / (fan_in + fan_out): normal, or uniform on +-sqrt(6 / (fan_in + fan_out)) | Glorot & Bengio 2010 |
| kaiming | std = gain / sqrt(fan), fan = fan_in (``init.mode``) or fan_out, gain from the activation | He et al. 2015 |
| lecun | std = 1 / sqrt(fan_in) (what SELU needs) | LeCun et al. 1998 |
| orthogonal | a (semi-)orthogonal matrix times ``init.gain`` (1) | Saxe et al. 2014 |

Every scheme but ``default`` accepts ``init.distribution=uniform``: the same standard deviation from
U(-sqrt(3) std, sqrt(3) std). Biases are set to ``init.bias`` when given (e.g. 0.01, the lecture's remedy against
dead ReLUs), else to 0 (``default`` keeps torch's biases).

``glorot`` is what torch calls ``xavier_normal_`` (``xavier_uniform_`` with ``init.distribution=uniform``);
``xavier`` here is the lecture's 1 / sqrt(fan_in), which is not torch's.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, get_args

import torch
from torch import nn

from trainlab.settings import Setting, checked

Scheme = Literal["default", "zeros", "small_random", "xavier", "glorot", "kaiming", "lecun", "orthogonal"]
SCHEMES: tuple[str, ...] = get_args(Scheme)
LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear ``[out, in]`` or Conv ``[out, in, *kernel]`` weight."""
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


class WeightInit:
    """Initialise the layers of a network: ``WeightInit("kaiming")(net, activation)``.

    Args:
        scheme: one of :data:`SCHEMES`.
        std: standard deviation for ``small_random``.
        distribution: ``normal`` or ``uniform`` (same standard deviation).
        mode: Kaiming's ``fan_in`` (keeps forward activations) or ``fan_out`` (keeps backward gradients).
        gain: overrides the activation's Kaiming gain (kaiming) or the orthogonal gain.
        bias: constant for every bias; ``None``: 0 (torch's for ``default``).
    """

    @checked
    def __init__(
        self,
        scheme: Annotated[Scheme, Setting("the init scheme")] = "default",
        std: Annotated[float, Setting("standard deviation of the weights", low=0, low_open=True)] = 0.01,
        distribution: Annotated[Literal["normal", "uniform"], Setting("the init's distribution")] = "normal",
        mode: Annotated[Literal["fan_in", "fan_out"], Setting("the fan the init keeps")] = "fan_in",
        gain: Annotated[float, Setting("the init's gain", low=0, low_open=True)] | None = None,
        bias: Annotated[float, Setting("the constant every bias starts at")] | None = None,
    ) -> None:
        self.scheme, self.std, self.distribution, self.mode, self.gain, self.bias = (
            scheme,
            std,
            distribution,
            mode,
            gain,
            bias,
        )

    def weight_std(self, fan_in: int, fan_out: int, activation_gain: float = 1.0) -> float:
        """The standard deviation this scheme gives a layer's weights."""
        match self.scheme:
            case "zeros":
                return 0.0
            case "small_random":
                return self.std
            case "xavier" | "lecun":
                return 1.0 / math.sqrt(fan_in)
            case "glorot":
                return math.sqrt(2.0 / (fan_in + fan_out))
            case "kaiming":
                gain = self.gain if self.gain is not None else activation_gain
                return gain / math.sqrt(fan_in if self.mode == "fan_in" else fan_out)
        raise ValueError(f"init={self.scheme!r} has no closed-form standard deviation")

    @torch.no_grad()
    def __call__(self, net: nn.Module, activation=None) -> nn.Module:
        if self.scheme == "default":
            if self.bias is not None:
                for layer in net.modules():
                    if isinstance(layer, LAYERS) and layer.bias is not None:
                        layer.bias.fill_(self.bias)
            return net
        activation_gain = getattr(activation, "gain", 1.0)
        for layer in net.modules():
            if not isinstance(layer, LAYERS):
                continue
            weight = layer.weight
            if self.scheme == "orthogonal":
                nn.init.orthogonal_(weight, gain=self.gain if self.gain is not None else 1.0)
            else:
                std = self.weight_std(*fans(weight), activation_gain=activation_gain)
                if self.distribution == "normal":
                    weight.normal_(0.0, std)
                else:
                    bound = math.sqrt(3.0) * std
                    weight.uniform_(-bound, bound)
            if layer.bias is not None:
                layer.bias.fill_(self.bias if self.bias is not None else 0.0)
        return net

    def __repr__(self) -> str:
        return f"WeightInit({self.scheme!r})"
