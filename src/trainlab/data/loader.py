"""Batches sliced from in-memory tensors: no per-sample Python, no worker processes.

Every data set trainlab ships fits in memory, so a batch is one fancy-indexing call on a tensor instead of
`batch_size` `__getitem__` calls plus a collate. The shuffle order is a pure function of (seed, epoch), which is
what makes a resumed run see exactly the batches an uninterrupted run sees: Lightning calls
``loader.sampler.set_epoch(epoch)`` before each epoch, the same hook it uses for ``DistributedSampler``.

Under DDP each process takes every ``world_size``-th index of the same permutation (training) or one contiguous
chunk (evaluation), so the processes never see the same sample twice in an epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch


class TensorLoader:
    """Iterate over ``(tensor[idx] for tensor in tensors)`` in batches of ``batch_size``.

    Args:
        tensors: tensors with the same first dimension (e.g. images and labels).
        batch_size: samples per batch (per process under DDP).
        shuffle: draw a new permutation every epoch from ``(seed, epoch)``.
        seed: base seed of the permutations.
        drop_last: drop the final incomplete batch.
        rank, world_size: this process's share under data parallelism.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorLoader needs one or more tensors with the same first dimension")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._yielded = 0  # batches handed out in the current epoch (state_dict)
        self._skip = 0  # batches to skip at the next iteration (a resume in the middle of an epoch)

    # Lightning looks for `loader.sampler.set_epoch` before every epoch (and, having found a sampler, for a
    # batch sampler next to it).
    batch_sampler = None

    @property
    def sampler(self) -> TensorLoader:
        return self

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self._skip = 0  # a saved position belongs to the epoch it was saved in
        self.epoch = int(epoch)

    # Lightning saves a loader's state_dict in every checkpoint and restores it before a resumed run iterates
    # (it does not prefetch from a loader with a length, so the count is the batches trained on). A run stopped
    # in the middle of an epoch (ctrl-C, SIGTERM) thereby resumes with exactly the batches it had not seen.
    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self._yielded, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        batches = int(state["batches"])
        self._skip = batches if 0 < batches < len(self) else 0

    def _indices(self) -> torch.Tensor | None:
        """This process's sample indices for the current epoch (``None``: all samples in order)."""
        n = len(self.tensors[0])
        if self.shuffle:
            # SeedSequence mixes (seed, epoch) so that seed s, epoch e+1 is not seed s+1, epoch e.
            mixed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(mixed))
            if self.world_size > 1:  # equal shares, so that every process runs the same number of steps
                idx = idx[: n - n % self.world_size][self.rank :: self.world_size]
            return idx
        if self.world_size > 1:
            return torch.tensor_split(torch.arange(n), self.world_size)[self.rank]
        return None

    def _num_samples(self) -> int:
        n = len(self.tensors[0])
        if self.world_size == 1:
            return n
        if self.shuffle:
            return n // self.world_size
        return len(torch.tensor_split(torch.arange(n), self.world_size)[self.rank])

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        idx = self._indices()
        if idx is not None:  # one copy per epoch to the data's device, not one per batch
            idx = idx.to(self.tensors[0].device)
        start, self._skip = self._skip, 0
        self._yielded = start
        for b in range(start, len(self)):
            self._yielded = b + 1
            lo, hi = b * self.batch_size, (b + 1) * self.batch_size
            if idx is None:  # contiguous slices are views: no copy at all
                yield tuple(t[lo:hi] for t in self.tensors)
            else:
                sel = idx[lo:hi]
                yield tuple(t[sel] for t in self.tensors)
