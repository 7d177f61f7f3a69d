"""Snapshot ensembles (Huang, Li, Pleiss, Liu, Hopcroft, Weinberger, ICLR 2017): ``ensemble=snapshot``.

One training run of T steps with a cyclic cosine learning rate of M cycles,

    lr(t) = lr0 / 2 * (cos(pi * ((t - 1) mod ceil(T / M)) / ceil(T / M)) + 1),

restarting at lr0 at the start of every cycle; the weights at the end of each cycle (where the learning rate is
near 0 and the model in a local minimum) are saved as a snapshot, and the last ``keep`` snapshots' probabilities
are averaged at test time. Here cycles are whole epochs (``ensemble.cycles`` must divide ``trainer.max_epochs``);
the learning rate follows the formula per optimizer step. Early stopping is switched off by the config: the
cycles need the whole run.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pytorch_lightning import Callback, LightningModule, Trainer


def snapshot_schedule(optimizer: torch.optim.Optimizer, total_steps: int | None = None, cycles: int = 5):
    """The paper's cyclic cosine learning rate as a per-step ``LambdaLR`` (``total_steps`` filled in by trainlab)."""
    if cycles < 1:
        raise ValueError(f"ensemble.cycles={cycles} must be >= 1")
    period = math.ceil(total_steps / cycles)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (math.cos(math.pi * (t % period) / period) + 1))


class SnapshotEnsemble(Callback):
    """Save ``snapshot_<k>.ckpt`` at the end of each of ``cycles`` equal parts of the run."""

    def __init__(self, cycles: int = 5, keep: int | None = None, dirpath: str = "snapshots") -> None:
        if cycles < 1:
            raise ValueError(f"ensemble.cycles={cycles} must be >= 1")
        if keep is not None and not 1 <= keep <= cycles:
            raise ValueError(f"ensemble.keep={keep} must be between 1 and ensemble.cycles={cycles}")
        self.cycles, self.keep, self.dirpath = cycles, keep or cycles, Path(dirpath)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.max_epochs is None or trainer.max_epochs < 1 or trainer.max_epochs % self.cycles:
            raise ValueError(
                f"ensemble.cycles={self.cycles} must divide trainer.max_epochs={trainer.max_epochs} (one cycle is "
                "a whole number of epochs)"
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epochs_per_cycle = trainer.max_epochs // self.cycles
        if (trainer.current_epoch + 1) % epochs_per_cycle == 0:
            path = self.dirpath / f"snapshot_{(trainer.current_epoch + 1) // epochs_per_cycle}.ckpt"
            trainer.save_checkpoint(path, weights_only=True)

    def members(self) -> list[str]:
        """The last ``keep`` snapshot files, oldest first (read from disk, so a resumed run finds them too)."""
        snapshots = sorted(self.dirpath.glob("snapshot_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))
        return [str(p) for p in snapshots[-self.keep :]]
