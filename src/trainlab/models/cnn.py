"""A small convolutional network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

POOLS = ("max", "avg", "none")


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
    block halves height and width (8x8 digits: 8 -> 4 -> 2 with two blocks).

    Args:
        input_shape: ``(channels, height, width)`` of one sample.
        num_classes: output logits.
        channels: output channels of each conv block.
        hidden: units of the fully connected layer before the classifier.
        pool: ``max``, ``avg`` or ``none``.
        pool_size: kernel and stride of the pooling layer.
        activation: factory of the non-linearity.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        pool: str = "max",
        pool_size: int = 2,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        in_ch, height, width = input_shape
        blocks: list[nn.Module] = []
        for out_ch in channels:
            blocks += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1),
                activation(),
                nn.Conv2d(out_ch, out_ch, 3, padding=1),
                activation(),
                make_pool(pool, pool_size),
            ]
            in_ch = out_ch
            if pool != "none":
                height, width = height // pool_size, width // pool_size
        if height < 1 or width < 1:
            raise ValueError(
                f"model.channels={list(channels)} with pool_size={pool_size} pools a {input_shape[1]}x"
                f"{input_shape[2]} image down to nothing; use fewer blocks or model.pool=none"
            )
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_ch * height * width, hidden),
            activation(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
