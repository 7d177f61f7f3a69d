"""Multi-layer perceptron."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated

from torch import Tensor, nn

from trainlab.settings import Setting, checked


def hidden_layer(
    fan_in: int,
    size: int,
    activation: Callable[[], nn.Module],
    dropout: Callable[[], nn.Module] | None = None,
    alpha_dropout: Callable[[], nn.Module] | None = None,
    dropconnect: Callable[..., nn.Module] | None = None,
) -> list[nn.Module]:
    """Linear -> activation (-> dropout), the Linear widened ``activation.pieces`` times for maxout; with
    ``dropconnect`` the Linear and its activation become one layer, ``dropconnect(fan_in, width, activation)``."""
    width = size * getattr(activation, "pieces", 1)
    if dropconnect:
        layers: list[nn.Module] = [dropconnect(fan_in, width, activation)]
    else:
        layers = [nn.Linear(fan_in, width), activation()]
    if dropout:
        layers.append(dropout())
    if alpha_dropout:
        layers.append(alpha_dropout())
    return layers


class MLP(nn.Module):
    """flatten -> [Linear -> activation] per hidden size -> Linear(num_classes).

    Args:
        input_shape: shape of one sample, e.g. ``(1, 8, 8)``; it is flattened.
        num_classes: output logits.
        depth, width: ``depth`` hidden layers of ``width`` units, unless ``sizes`` is given.
        sizes: explicit hidden sizes, e.g. ``[256, 128, 100]``.
        activation: factory of the non-linearity after every hidden layer (``activation=`` group).
        dropout, alpha_dropout: layer factories (``regularizer=[dropout]``): a dropout layer after every hidden
            activation.
        dropconnect: a layer factory (``regularizer=[dropconnect]``): DropConnect on every hidden layer.
    """

    @checked
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: Annotated[int, Setting("classes (outputs)", low=2)],
        depth: Annotated[int, Setting("hidden layers of the MLP", low=1)] = 2,
        width: Annotated[int, Setting("units per hidden layer", low=1)] = 128,
        sizes: Sequence[int] | None = None,
        activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: Callable[[], nn.Module] | None = None,
        alpha_dropout: Callable[[], nn.Module] | None = None,
        dropconnect: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        hidden = list(sizes) if sizes is not None else [width] * depth
        if any(size < 1 for size in hidden):
            raise ValueError(f"model.sizes={list(sizes)}: every hidden size must be >= 1")
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for size in hidden:
            layers += hidden_layer(fan_in, size, activation, dropout, alpha_dropout, dropconnect)
            fan_in = size
        layers.append(nn.Linear(fan_in, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
