"""A small convolutional network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal, get_args

import torch
from torch import Tensor, nn

from trainlab.models.mlp import hidden_layer
from trainlab.settings import Setting, checked

Pool = Literal["max", "avg", "none"]
POOLS: tuple[str, ...] = get_args(Pool)


def make_pool(pool: str, size: int) -> nn.Module:
    if pool == "max":
        return nn.MaxPool2d(size)
    if pool == "avg":
        return nn.AvgPool2d(size)
    if pool == "none":
        return nn.Identity()
    raise ValueError(f"model.pool={pool!r} is not a pooling layer; choose one of {', '.join(POOLS)}")


class CNN(nn.Module):
    """[Conv3x3 -> act -> Conv3x3 -> act -> pool] per entry of ``channels``, then Linear -> act -> Linear.

    Convolutions are padded ("same"), so only the pooling layers shrink the image: with ``pool_size=2`` each
    block halves height and width (8x8 digits: 8 -> 4 -> 2 with two blocks). With ``fractional_pool`` each
    pooling layer is fractional max pooling instead and shrinks the image by its ratio (8 -> 5 -> 3 at 1/sqrt 2).

    Args:
        input_shape: ``(channels, height, width)`` of one sample.
        num_classes: output logits.
        channels: output channels of each conv block.
        hidden: units of the fully connected layer before the classifier.
        pool: ``max``, ``avg`` or ``none``.
        pool_size: kernel and stride of the pooling layer.
        activation: factory of the non-linearity; with maxout every conv is widened (channel-wise maxout).
        dropout, alpha_dropout, dropconnect: applied to the hidden fully connected layer (see :class:`MLP`).
        fractional_pool: a layer factory (``regularizer=[fractional_pool]``): its ``FractionalMaxPool2d`` replaces
            ``pool``; with
            ``test_samples`` k > 1 a test prediction averages the class probabilities of k passes.
    """

    needs_images = True  # [C, H, W] inputs, not vectors

    @checked
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: Annotated[int, Setting("classes (outputs)", low=2)],
        channels: Sequence[int] = (32, 64),
        hidden: Annotated[int, Setting("units of the CNN's hidden layer", low=1)] = 128,
        pool: Annotated[Pool, Setting("the CNN's pooling")] = "max",
        pool_size: Annotated[int, Setting("kernel and stride of the CNN's pooling", low=1)] = 2,
        activation: Callable[[], nn.Module] = nn.ReLU,
        dropout: Callable[[], nn.Module] | None = None,
        alpha_dropout: Callable[[], nn.Module] | None = None,
        dropconnect: Callable[..., nn.Module] | None = None,
        fractional_pool: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        in_ch, height, width = input_shape
        pieces = getattr(activation, "pieces", 1)
        blocks: list[nn.Module] = []
        self.test_samples = 1
        for out_ch in channels:
            blocks += [nn.Conv2d(in_ch, out_ch * pieces, 3, padding=1), activation()]
            blocks += [nn.Conv2d(out_ch, out_ch * pieces, 3, padding=1), activation()]
            if fractional_pool:
                fmp = fractional_pool()
                self.test_samples = fmp.test_samples
                blocks.append(fmp)
                height, width = fmp.output_size(height, width)
            else:
                blocks.append(make_pool(pool, pool_size))
                if pool != "none":
                    height, width = height // pool_size, width // pool_size
            in_ch = out_ch
            if height < 1 or width < 1:
                raise ValueError(
                    f"model.channels={list(channels)} pools a {input_shape[1]}x{input_shape[2]} image down to "
                    "nothing; use fewer blocks, model.pool=none or a larger fractional_pool ratio"
                )
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            *hidden_layer(in_ch * height * width, hidden, activation, dropout, alpha_dropout, dropconnect),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.training or self.test_samples <= 1:
            return self.classifier(self.features(x))
        # Graham 2014: average the predictions of several test passes, each with other pooling regions
        from trainlab.regularizers.fractional_pool import set_pass_index

        probs = 0.0
        for index in range(self.test_samples):
            set_pass_index(self, index)
            probs = probs + torch.softmax(self.classifier(self.features(x)), dim=-1)
        return torch.log(probs / self.test_samples)  # log-probabilities are valid logits
