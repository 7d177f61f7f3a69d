"""A synthetic data set of any shape: for speed benchmarks and smoke tests where no real data is at hand.

Each class has a fixed random template; a sample is its class's template plus Gaussian noise, clipped to [0, 1].
The classes are separable but not trivially (``noise`` sets how hard), so accuracy still means something.
Everything is drawn from ``seed``: the same config gives the same data on every machine.

``input_shape`` ``[C, H, W]`` gives images; ``[D]`` gives vectors of D features (tabular data, as users bring it:
``data=synthetic data.input_shape=[2]``), on which the image-only options (CNN/ResNet, augmentation, cutout,
CutMix, channels_last) are refused by the settings check.
"""

from __future__ import annotations

from typing import Annotated

import torch

from trainlab.data.datamodule import InMemoryDataModule
from trainlab.settings import Setting, checked


class SyntheticDataModule(InMemoryDataModule):
    """``data=synthetic``: ``train_size`` / ``val_size`` / ``test_size`` samples of ``input_shape``, ``num_classes``."""

    @checked
    def __init__(
        self,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_classes: Annotated[int, Setting("classes of the synthetic data", low=2)] = 10,
        train_size: Annotated[int, Setting("samples of the training split", low=1)] = 55_000,
        val_size: Annotated[int, Setting("samples of the validation split", low=1)] = 5_000,
        test_size: Annotated[int, Setting("samples of the test split", low=1)] = 10_000,
        noise: Annotated[float, Setting("standard deviation of the noise added to the class templates", low=0)] = 0.5,
        seed: Annotated[int, Setting("seed of the generated data", low=0, high=2**32 - 1)] = 0,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(
                f"data.input_shape={list(input_shape)}: give [channels, height, width] (images) or [features] "
                "(vectors), each >= 1"
            )
        self.input_shape, self.num_classes = shape, int(num_classes)
        self.sizes = {"train": int(train_size), "val": int(val_size), "test": int(test_size)}
        self.noise, self.seed = float(noise), int(seed)

    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        templates = torch.rand(self.num_classes, *self.input_shape, generator=generator)
        splits = {}
        for name, size in self.sizes.items():
            y = torch.randint(0, self.num_classes, (size,), generator=generator)
            x = templates[y] + self.noise * torch.randn(size, *self.input_shape, generator=generator)
            splits[name] = (x.clamp_(0.0, 1.0), y)
        return splits
