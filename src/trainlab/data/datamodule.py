"""The base of every trainlab data module: three in-memory splits served by :class:`TensorLoader`.

A subclass implements :meth:`load_splits` and returns ``{"train": (x, y), "val": (x, y), "test": (x, y)}`` as
tensors (images ``float32 [N, C, H, W]``, labels ``int64 [N]``). Everything else (batching, per-epoch seeded
shuffling, DDP sharding) lives here once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from pytorch_lightning import LightningDataModule

from trainlab.data.loader import TensorLoader


class InMemoryDataModule(LightningDataModule, ABC):
    #: class count and sample shape, also given in the data config so the model configs can read them
    num_classes: int
    input_shape: tuple[int, ...]

    def __init__(self, batch_size: int = 64, eval_batch_size: int | None = None, **_: object) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @abstractmethod
    def load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return the ``train``, ``val`` and ``test`` splits as ``(images, labels)`` tensors."""

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = self.load_splits()

    def _loader(self, split: str, train: bool) -> TensorLoader:
        self.setup()
        x, y = self.splits[split]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
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

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> TensorLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> TensorLoader:
        return self._loader("test", train=False)
