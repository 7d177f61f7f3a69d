"""The per-epoch training curves: train/val loss and accuracy, one entry per epoch, kept in checkpoints."""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback


class History(Callback):
    """The epochs' ``keys`` of ``trainer.callback_metrics``, one entry per training epoch, in :attr:`epochs`.

    ``trainlab-train`` draws ``curves.png`` and writes the diagnosis of ``metrics.json`` from it. The entries travel
    in every checkpoint as ``checkpoint["trainlab"]["history"]`` and come back when a fit resumes from one, so a
    resumed run's curves start at epoch 0. Testing or validating a checkpoint leaves them as they are.

    The module calls :meth:`record` at the end of each training epoch, once it has logged the epoch's training
    metrics (a callback's ``on_train_epoch_end`` runs before the module's, when they are not logged yet).
    """

    def __init__(self, keys: tuple[str, ...] = ("train/loss", "train/acc", "val/loss", "val/acc")) -> None:
        self.keys = tuple(keys)
        #: ``[{"epoch": 0, "train/loss": ..., ...}, ...]``; a key is absent in an epoch that did not log it
        self.epochs: list[dict[str, float]] = []

    def record(self, trainer) -> None:
        """Append this epoch's entry."""
        metrics = trainer.callback_metrics  # this epoch's values, reduced over processes: one host sync per epoch
        entry = {k: float(metrics[k]) for k in self.keys if k in metrics}
        self.epochs.append({"epoch": trainer.current_epoch, **entry})

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint.setdefault("trainlab", {})["history"] = list(self.epochs)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == "fit":
            self.epochs = list((checkpoint.get("trainlab") or {}).get("history", []))
