"""A CIFAR-style pre-activation ResNet (He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", 2016).

stem Conv3x3(width) -> 3 stages of n pre-activation blocks (width, 2 width, 4 width channels; the first block of
stages 2 and 3 halves height and width with stride 2) -> norm + activation -> global average pool -> Linear.
depth = 6n + 2 (ResNet-20: n = 3). A block is

    out = act(BN(x));  shortcut = x, or Conv1x1(out) when the shape changes
    return shortcut + Conv3x3(act(BN(Conv3x3(out))))

With ``activation=maxout`` each BatchNorm -> activation pair becomes :class:`MaxoutNorm2d` (k affine pieces per
channel after the normalisation). With ``regularizer=[stochastic_depth]`` each residual branch is wrapped in
:class:`StochasticDepth` with the linear-decay survival probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

from torch import Tensor, nn

from trainlab.activations.maxout import MaxoutNorm2d
from trainlab.regularizers.stochastic_depth import LinearDecay, StochasticDepth
from trainlab.settings import Setting, checked


def norm_act(channels: int, activation: Callable[[], nn.Module]) -> nn.Module:
    pieces = getattr(activation, "pieces", 1)
    if pieces > 1:
        return MaxoutNorm2d(channels, pieces)
    return nn.Sequential(nn.BatchNorm2d(channels), activation())


class PreActBlock(nn.Module):
    def __init__(
        self, in_ch: int, out_ch: int, stride: int, activation: Callable[[], nn.Module], survival: float = 1.0
    ) -> None:
        super().__init__()
        self.pre = norm_act(in_ch, activation)
        branch = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            norm_act(out_ch, activation),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        )
        self.residual = StochasticDepth(branch, survival)
        self.project = None
        if stride != 1 or in_ch != out_ch:
            self.project = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.pre(x)
        shortcut = self.project(out) if self.project is not None else x
        return self.residual(out, shortcut)


class ResNet(nn.Module):
    """Args:
    input_shape: ``(channels, height, width)``.
    num_classes: output logits.
    depth: 6n + 2 layers (8, 14, 20, 32, 44, 56, 110).
    width: channels of the first stage (16 in the paper).
    activation: factory of the non-linearity (an :class:`~trainlab.activations.Activation`).
    stochastic_depth: the survival rule of residual blocks (``regularizer=[stochastic_depth]``).
    dropout, alpha_dropout: layer factories for a dropout layer before the classifier.
    """

    needs_images = True  # [C, H, W] inputs, not vectors

    @checked
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: Annotated[int, Setting("classes (outputs)", low=2)],
        depth: Annotated[int, Setting("layers of the ResNet (6n+2: 8, 14, 20, 32, 44, 56, 110, ...)", low=8)] = 20,
        width: Annotated[int, Setting("channels of the ResNet's first stage", low=1)] = 16,
        activation: Callable[[], nn.Module] = nn.ReLU,
        stochastic_depth: LinearDecay | None = None,
        dropout: Callable[[], nn.Module] | None = None,
        alpha_dropout: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:  # the range is declared above; the form 6n+2 is checked here
            raise ValueError(
                f"model.depth={depth}: a CIFAR ResNet has 6n+2 layers, n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)"
            )
        n = (depth - 2) // 6
        survival = stochastic_depth.survival(3 * n) if stochastic_depth else [1.0] * (3 * n)
        self.stem = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        blocks, in_ch = [], width
        for stage, out_ch in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(PreActBlock(in_ch, out_ch, stride, activation, survival[len(blocks)]))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        head: list[nn.Module] = [norm_act(in_ch, activation), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout:
            head.append(dropout())
        if alpha_dropout:
            head.append(alpha_dropout())
        head.append(nn.Linear(in_ch, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))
