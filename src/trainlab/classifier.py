"""The LightningModule: a network, its loss, its metrics, its optimizer and learning-rate schedule."""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

#: keys of a scheduler config that trainlab reads and does not pass to the scheduler class
SCHEDULER_KEYS = ("interval", "monitor", "frequency")


def hard_labels(target: Tensor) -> Tensor:
    """Class indices from either class indices ``[N]`` or class probabilities ``[N, C]`` (soft targets)."""
    return target.argmax(dim=-1) if target.ndim > 1 else target


class Classifier(LightningModule):
    """Softmax classifier around any ``nn.Module`` that maps a batch to logits.

    Loss: cross-entropy, which accepts class indices or (e.g. mixed or smoothed) class probabilities; accuracy is
    always measured against hard labels. Metrics are accumulated on the device and logged once per epoch as
    ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``, ``test/acc``.

    Args:
        net: the network.
        num_classes: number of classes.
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LRScheduler`` (a Hydra ``_partial_``), or ``None``.
        scheduler_interval: step the scheduler every ``epoch`` or every ``step``.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` watches.
        penalty: ``net -> tensor`` added to the training loss (l1 / l2 / elastic net), logged as
            ``train/reg_loss``; ``train/loss`` stays the data loss, comparable with ``val/loss``.
        config: the run's resolved config (plain containers). It is stored in every checkpoint so that
            ``trainlab-eval`` can rebuild the model from the checkpoint alone.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str | None = None,
        penalty: Callable[[nn.Module], Tensor] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.penalty = penalty
        self.config = dict(config or {})

        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_reg_loss = MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # saved in checkpoints, so a resumed run keeps its best

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target)

    # ---- steps: update metrics on the device, no host synchronisation ----
    def _shared_step(self, batch: tuple[Tensor, Tensor], loss_metric: MeanMetric, acc_metric) -> Tensor:
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        loss_metric.update(loss.detach(), weight=len(x))
        acc_metric.update(logits.detach(), hard_labels(y))
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, self.train_loss, self.train_acc)
        if self.penalty is not None:
            reg = self.penalty(self.net)
            self.train_reg_loss.update(reg.detach())
            loss = loss + reg
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, self.val_loss, self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, self.test_loss, self.test_acc)

    # ---- epoch ends: compute (synchronised across processes by torchmetrics), log, reset ----
    def _log_epoch(self, stage: str, loss_metric: MeanMetric, acc_metric) -> Tensor:
        acc = acc_metric.compute()
        # the values are already reduced over processes by torchmetrics; sync_dist only tells Lightning so
        self.log(f"{stage}/loss", loss_metric.compute(), prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=True, sync_dist=True)
        loss_metric.reset()
        acc_metric.reset()
        return acc

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_loss, self.train_acc)
        if self.penalty is not None:
            self.log("train/reg_loss", self.train_reg_loss.compute(), sync_dist=True)
            self.train_reg_loss.reset()

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val", self.val_loss, self.val_acc)
        if not self.trainer.sanity_checking:  # the sanity check's untrained accuracy is not a "best"
            self.val_acc_best.update(acc)
        if self.val_acc_best.update_called:
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_acc)

    # ---- optimisation ----
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        params = inspect.signature(self.scheduler_factory).parameters
        keywords = getattr(self.scheduler_factory, "keywords", {})
        if "total_steps" in params and keywords.get("total_steps") is None:  # OneCycleLR
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval, "frequency": 1}
        if self.scheduler_monitor:
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    # ---- checkpoints carry the config and the random state ----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["trainlab"] = {"config": self.config, "rng": _rng_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("trainlab", {}).get("rng")
        if rng is not None and self.trainer.state.fn == "fit":
            _set_rng_state(rng)


def _rng_state() -> dict[str, Any]:
    """Every global random state, as types that ``torch.load(weights_only=True)`` accepts."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
