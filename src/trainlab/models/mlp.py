"""Multi-layer perceptron."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn


class MLP(nn.Module):
    """flatten -> [Linear -> activation] per hidden size -> Linear(num_classes).

    Args:
        input_shape: shape of one sample, e.g. ``(1, 8, 8)``; it is flattened.
        num_classes: output logits.
        depth, width: ``depth`` hidden layers of ``width`` units, unless ``sizes`` is given.
        sizes: explicit hidden sizes, e.g. ``[256, 128, 100]``.
        activation: factory of the non-linearity placed after every hidden layer.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 2,
        width: int = 128,
        sizes: Sequence[int] | None = None,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        hidden = list(sizes) if sizes is not None else [width] * depth
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for size in hidden:
            layers += [nn.Linear(fan_in, size), activation()]
            fan_in = size
        layers.append(nn.Linear(fan_in, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
