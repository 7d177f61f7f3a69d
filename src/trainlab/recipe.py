"""The lecture's recipe for choosing hyperparameters, step 1: check the initial loss.

With small random weights a softmax classifier over C classes predicts about 1/C for every class, so its
cross-entropy starts near ln(C) (2.303 for 10 classes). A start far from it means a bug or a bad initialisation
(too large weights, a wrong loss or labels) and is worth finding before any tuning. Measured with the data loss
only (no weight penalty), in eval mode (no dropout noise), on the first ``batches`` training batches, without
augmentation.

* ``trainlab-train recipe=initial_loss`` runs only this check and writes ``initial_loss.json`` (``loss``,
  ``expected``, ``ok``); it exits with status 1 and an explanation when the loss is off by more than ``tolerance``
  (a fraction of ln C).
* Every training run does the same check at its start (:class:`InitialLossCheck`, part of ``callbacks=default``),
  logs ``train/initial_loss`` and warns when it is off.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

log = logging.getLogger("trainlab")


@torch.no_grad()
def initial_loss(module, datamodule, batches: int = 5, tolerance: float = 0.25) -> dict[str, Any]:
    """Mean data loss of ``module`` on the first ``batches`` training batches, against ln(C)."""
    was_training = module.training
    module.eval()
    losses = []
    for i, (x, y) in enumerate(datamodule.train_dataloader()):
        if i >= batches:
            break
        x, y = x.to(module.device), y.to(module.device)
        losses.append(module.loss(module(x), y).item())
    module.train(was_training)
    loss = sum(losses) / len(losses)
    expected = math.log(module.num_classes)
    ok = abs(loss - expected) <= tolerance * expected
    verdict = f"initial loss {loss:.4f}, expected about ln({module.num_classes}) = {expected:.4f}: " + (
        "as expected" if ok else _advice(loss, expected)
    )
    return {"loss": loss, "expected": expected, "ok": ok, "batches": len(losses), "message": verdict}


def _advice(loss: float, expected: float) -> str:
    if not math.isfinite(loss):
        return "not finite: check the data (NaN inputs?) and the initialisation"
    if loss > expected:
        return "too high: the initial weights are too large (try init=kaiming or init=xavier) or the labels are wrong"
    return "too low: the labels may leak into the inputs, or the loss is not a cross-entropy over the classes"


class InitialLossCheck(Callback):
    """At the start of a fresh training run, measure the initial loss and warn when it is far from ln(C)."""

    def __init__(self, batches: int = 5, tolerance: float = 0.25) -> None:
        self.batches, self.tolerance = batches, tolerance

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step > 0 or trainer.datamodule is None or not hasattr(pl_module, "num_classes"):
            return  # a resumed run is past its initial loss
        result = initial_loss(pl_module, trainer.datamodule, self.batches, self.tolerance)
        for logger in trainer.loggers:
            logger.log_metrics({"train/initial_loss": result["loss"]}, step=0)
        (log.info if result["ok"] else log.warning)(result["message"])
