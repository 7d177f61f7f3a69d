"""Snapshot ensembles (Huang, Li, Pleiss, Liu, Hopcroft, Weinberger, ICLR 2017): ``ensemble=snapshot``.

One training run of T steps with a cyclic cosine learning rate of M cycles. The paper's cycles are equal,

    lr(t) = lr0 / 2 * (cos(pi * ((t - 1) mod ceil(T / M)) / ceil(T / M)) + 1),

restarting at lr0 at the start of every cycle; the weights at the end of each cycle (where the learning rate is
near 0 and the model in a local minimum) are saved as a snapshot, and the last ``keep`` snapshots' probabilities
are averaged at test time.

Here a cycle is a whole number of epochs, so that every snapshot is an end-of-epoch model, and ``ensemble.cycles``
need NOT divide ``trainer.max_epochs``: the E epochs are shared out as evenly as possible, the longer cycles first
(:func:`cycle_lengths`: 6 epochs in 5 cycles are cycles of 2, 1, 1, 1, 1 epochs; 10 in 3 are 4, 3, 3). With
cycle c spanning the optimizer steps [s_c, s_{c+1}),

    lr(t) = lr0 / 2 * (cos(pi * (t - s_c) / (s_{c+1} - s_c)) + 1)   for s_c <= t < s_{c+1},

per optimizer step: the cosine restarts at lr0 at every cycle boundary and falls towards 0 over each cycle,
whatever its length (with equal cycles this is the paper's formula). Fewer epochs than cycles cannot give every
cycle an epoch and is refused before the run (``trainlab.combinations``). Early stopping is switched off by the
config: the cycles need the whole run.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from pathlib import Path
from typing import Annotated

import torch
from pytorch_lightning import LightningModule, Trainer

from trainlab.ensembles import Ensemble, ensemble_report, test_probabilities
from trainlab.settings import Setting, checked

log = logging.getLogger("trainlab")

#: ``ensemble.cycles``
Cycles = Annotated[int, Setting("snapshot cycles", low=1)]


@checked
def cycle_lengths(total: int, cycles: Cycles) -> list[int]:
    """``total`` units (epochs or steps) in ``cycles`` cycles as even as possible, the longer ones first."""
    if total < cycles:
        raise ValueError(
            f"ensemble.cycles={cycles} needs trainer.max_epochs >= {cycles} (each cycle is at least one epoch), got "
            f"trainer.max_epochs={total}: lower ensemble.cycles or train longer"
        )
    base, extra = divmod(total, cycles)
    return [base + 1] * extra + [base] * (cycles - extra)


def cycle_ends(total: int, cycles: int) -> list[int]:
    """Where each cycle ends (exclusive, counted from 0): ``cycle_ends(6, 5) == [2, 3, 4, 5, 6]``."""
    return list(itertools.accumulate(cycle_lengths(total, cycles)))


@checked
def snapshot_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int | None = None, cycles: Cycles = 5, epochs: int | None = None
):
    """The cyclic cosine learning rate as a per-step ``LambdaLR`` (``total_steps`` filled in by trainlab).

    With ``epochs`` (``trainer.max_epochs``), the cycles are :func:`cycle_lengths` whole epochs of
    ``total_steps / epochs`` steps each; without it the ``total_steps`` steps are shared out the same way.
    """
    if epochs is None:
        ends = cycle_ends(total_steps, cycles)
    else:
        ends = [round(end * total_steps / epochs) for end in cycle_ends(epochs, cycles)]
    starts = [0, *ends[:-1]]

    def factor(step: int) -> float:
        c = min(bisect.bisect_right(ends, step), cycles - 1)  # steps past the end stay in the last cycle
        start, length = starts[c], max(ends[c] - starts[c], 1)
        return 0.5 * (math.cos(math.pi * min(step - start, length) / length) + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class SnapshotEnsemble(Ensemble):
    """Save ``snapshot_<k>.ckpt`` at the end of each of ``cycles`` cycles of whole epochs (:func:`cycle_lengths`),
    with the cyclic cosine learning rate (:func:`snapshot_schedule`) over ``epochs`` (``trainer.max_epochs``) in
    place of the configured scheduler; the report averages the last ``keep`` snapshots' probabilities."""

    @checked
    def __init__(
        self,
        cycles: Cycles = 5,
        keep: Annotated[int, Setting("snapshots kept (the last ones)", low=1)] | None = None,
        dirpath: str = "snapshots",
        epochs: Annotated[int, Setting("epochs of the run (its cycles share them)", low=1)] | None = None,
    ) -> None:
        if keep is not None and keep > cycles:  # the ranges are declared; the pair is checked here
            raise ValueError(f"ensemble.keep={keep} must be <= ensemble.cycles={cycles} (one snapshot per cycle)")
        self.cycles, self.keep, self.dirpath = cycles, keep or cycles, Path(dirpath)
        self.epochs = epochs

    def schedule(self):
        from functools import partial

        log.info("ensemble=snapshot: its cyclic cosine schedule replaces the configured scheduler")
        return partial(snapshot_schedule, total_steps=None, cycles=self.cycles, epochs=self.epochs or None)

    def report(self, trainer, module, x, y):
        batch = getattr(trainer.datamodule, "eval_batch_size", 256)
        device = module.device
        probs = [test_probabilities(module, self.load(path, device)["state_dict"], x, batch) for path in self.members()]
        return ensemble_report(probs, y)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epochs = trainer.max_epochs
        if epochs is None or epochs < 1:
            raise ValueError(f"ensemble=snapshot needs trainer.max_epochs (its cycles are whole epochs), got {epochs}")
        lengths = cycle_lengths(epochs, self.cycles)
        if len(set(lengths)) > 1:
            log.info(
                f"ensemble=snapshot: {epochs} epochs in {self.cycles} cycles of {', '.join(map(str, lengths))} "
                "epochs (as even as possible); a snapshot at the end of each"
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        ends = cycle_ends(trainer.max_epochs, self.cycles)
        done = trainer.current_epoch + 1
        if done in ends:
            trainer.save_checkpoint(self.dirpath / f"snapshot_{ends.index(done) + 1}.ckpt", weights_only=True)

    def members(self) -> list[str]:
        """The last ``keep`` snapshot files, oldest first (read from disk, so a resumed run finds them too)."""
        snapshots = sorted(self.dirpath.glob("snapshot_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))
        return [str(p) for p in snapshots[-self.keep :]]
