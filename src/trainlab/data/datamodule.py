"""The base of every trainlab data module: three in-memory splits.

A subclass implements :meth:`load_splits` and returns ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` as
tensors (images ``float32 [N, C, H, W]`` scaled to [0, 1], labels ``int64 [N]``). Everything else lives here once:

* ``loader=memory`` (default): the splits are moved once to the training device, and :class:`TensorLoader` slices
  batches from them (per-epoch seeded shuffling, DDP sharding). Augmentation then runs on the batch, on the device,
  inside the LightningModule: no per-sample Python, no worker processes.
* ``loader=dataloader``: a regular ``torch.utils.data.DataLoader`` with ``num_workers`` processes, applying the
  augmentation per sample with torchvision transforms (``train_transform``), for data that does not fit in memory.
  Both paths draw the same augmentation parameters from the same distributions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
import torch.utils.data
from pytorch_lightning import LightningDataModule

from trainlab.data.loader import TensorLoader
from trainlab.settings import Setting, checked

#: the settings every trainlab data module takes (``data.*``), declared once for the subclasses' signatures too
BatchSize = Annotated[int, Setting("samples per batch", low=1)]
EvalBatchSize = Annotated[int, Setting("samples per evaluation batch", low=1)] | None  # None: max(batch_size, 256)
Loader = Annotated[Literal["memory", "dataloader"], Setting("how batches are made")]
NumWorkers = Annotated[int, Setting("DataLoader worker processes", low=0)]
SplitSeed = Annotated[int, Setting("seed of the train/validation split", low=0)]
NumClasses = Annotated[int, Setting("classes of the data set", low=2)] | None  # the data config declares it


class InMemoryDataModule(LightningDataModule, ABC):
    #: class count and sample shape, also given in the data config so the model configs can read them
    num_classes: int
    input_shape: tuple[int, ...]

    @checked
    def __init__(
        self,
        batch_size: BatchSize = 64,
        eval_batch_size: EvalBatchSize = None,
        loader: Loader = "memory",
        num_workers: NumWorkers = 0,
        num_classes: NumClasses = None,
        input_shape: Sequence[int] | None = None,
    ) -> None:
        """``num_classes`` and ``input_shape`` are the data config's declarations, which the other configs read
        (``${data.num_classes}``): when given, they must be what this data set has. Any other key is refused."""
        super().__init__()
        for name, given in (("num_classes", num_classes), ("input_shape", input_shape)):
            has = getattr(type(self), name, None)
            if (
                given is not None
                and has is not None
                and (list(given) if name == "input_shape" else given) != (list(has) if name == "input_shape" else has)
            ):
                shown = list(has) if name == "input_shape" else has
                raise ValueError(f"data.{name}={given}: the {type(self).__name__} data have {name}={shown}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.loader = loader
        self.num_workers = num_workers
        #: per-sample transform of training images for ``loader=dataloader`` (set by trainlab.build)
        self.train_transform = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @abstractmethod
    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return the ``train``, ``val`` and ``test`` splits as ``(images, labels)`` tensors."""

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if self.loader == "memory" and device is not None and self.splits["train"][0].device != device:
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def train_images(self) -> torch.Tensor:
        """The training images, for fitting preprocessing statistics (never the validation or test images)."""
        self.setup()
        return self.splits["train"][0]

    def _loader(self, split: str, train: bool):
        self.setup()
        x, y = self.splits[split]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        if self.loader == "dataloader":
            return self._dataloader(x, y, train)
        return TensorLoader(
            x,
            y,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            # after seed_everything(seed) the initial seed is `seed`: the same order on every process
            seed=torch.initial_seed(),
            rank=rank,
            world_size=world,
        )

    def _dataloader(self, x: torch.Tensor, y: torch.Tensor, train: bool):
        from torch.utils.data import DataLoader

        dataset = _TransformDataset(x, y, self.train_transform if train else None)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", train=False)


class _TransformDataset(torch.utils.data.Dataset):
    """``(transform(x[i]), y[i])``: the per-sample path of ``loader=dataloader``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform=None) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        x = self.x[i]
        return (self.transform(x) if self.transform is not None else x), self.y[i]


def train_images(datamodule) -> torch.Tensor:
    """All training inputs, for statistics (preprocessing, SWA's BatchNorm pass): the data module's own
    ``train_images()`` when it has one (in order, without augmentation), else every batch of its
    ``train_dataloader()`` (any ``LightningDataModule``; its transforms, if any, are applied)."""
    if hasattr(datamodule, "train_images"):
        return datamodule.train_images()
    return torch.cat([batch[0] for batch in datamodule.train_dataloader()])
