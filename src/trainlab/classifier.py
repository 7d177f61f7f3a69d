"""The LightningModule: a network, its loss, its metrics, its optimizer and learning-rate schedule."""

from __future__ import annotations

import inspect
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from trainlab.errors import DivergenceError
from trainlab.techniques import Techniques

log = logging.getLogger("trainlab")

#: keys of a scheduler config that trainlab reads and does not pass to the scheduler class
SCHEDULER_KEYS = ("interval", "monitor", "frequency")


def hard_labels(target: Tensor) -> Tensor:
    """Class indices from either class indices ``[N]`` or class probabilities ``[N, C]`` (soft targets)."""
    return target.argmax(dim=-1) if target.ndim > 1 else target


class Classifier(LightningModule):
    """Softmax classifier around any ``nn.Module`` that maps a batch to logits.

    The training step, in order (:mod:`trainlab.techniques`): the ``pixels`` techniques (augmentation, on the batch,
    on the device) -> preprocessing (fitted on the training split) -> the ``normalized`` techniques (cutout) -> the
    ``batch`` techniques (mixup/CutMix, label smoothing) -> network -> cross-entropy + the ``loss`` techniques
    (weight penalties). Evaluation and ``forward``: preprocessing -> network, so a checkpoint predicts from raw
    [0, 1] images.

    Loss: cross-entropy, which accepts class indices or (mixed or smoothed) class probabilities; accuracy is
    always measured against the hard labels. Metrics are accumulated on the device and logged once per epoch as
    ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``, ``test/acc``.

    Args:
        net: the network.
        num_classes: number of classes.
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_``).
        scheduler: ``optimizer -> LRScheduler`` (a Hydra ``_partial_``), or ``None``.
        scheduler_interval: step the scheduler every ``epoch`` or every ``step``.
        scheduler_monitor: metric a ``ReduceLROnPlateau`` watches.
        preprocess: a :class:`~trainlab.preprocess.Preprocess`, fitted on the training images at the start of fit.
        techniques: the selected techniques in the order they act (:class:`~trainlab.techniques.Techniques`); the
            ``loss`` stage's terms are logged as ``train/reg_loss``, and ``train/loss`` stays the data loss,
            comparable with ``val/loss``.
        channels_last: keep the network's weights and its 4-D inputs in the channels-last memory format (faster
            convolutions on recent CPUs and on GPUs with tensor cores; no effect on the values).
        compile: ``torch.compile`` the network for training and evaluation: ``None``/``False`` (off), ``True``, or
            the keyword arguments of ``torch.compile`` (``{"mode": "max-autotune"}``). The compiled wrapper is not
            a submodule, so checkpoints keep the plain network's parameter names.
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
        preprocess: nn.Module | None = None,
        techniques: Techniques | None = None,
        config: Mapping[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.techniques = techniques if techniques is not None else Techniques()
        self.config = dict(config or {})
        #: the techniques' own callbacks (an ensemble's), active in every stage (configure_callbacks)
        self.technique_callbacks = list(callbacks)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.compile_options = None if not compile else ({} if compile is True else dict(compile))
        # torch.compile's wrapper of the network, kept out of the submodules (None: call the network itself)
        object.__setattr__(self, "_compiled_net", None)
        if self.compile_options is not None:
            object.__setattr__(self, "_compiled_net", torch.compile(self.net, **self.compile_options))

        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        # training totals, summed on the device without a host sync: [sum of loss x samples, correct, sum of the
        # regularization loss]; the sample and step counts are known on the host. Read once per epoch.
        # (torchmetrics' update costs ~60 us more per step; it remains for validation and test.)
        self.register_buffer("train_sums", torch.zeros(3), persistent=False)
        self._train_samples = self._train_steps = 0
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # the first optimizer step whose loss was not finite (-1: none); kept on the device, read once per epoch
        self.register_buffer("first_bad_step", torch.tensor(-1), persistent=False)
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # saved in checkpoints, so a resumed run keeps its best
        #: per-epoch train/val loss and accuracy (for curves.png and the diagnosis); stored in checkpoints
        self.history: list[dict[str, float]] = []
        #: stop training when the loss turns NaN/inf (off for the learning-rate range test, which diverges on purpose)
        self.divergence_guard = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` twice around every hook call, ~50 times per training step; through
        # nn.Module.__setattr__ (parameter/buffer/module bookkeeping) that costs ~0.2 ms per step on a 2-core CPU.
        # These names are plain attributes, never parameters, buffers or modules: store them directly.
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def configure_callbacks(self) -> list[Callback]:
        return self.technique_callbacks

    def forward(self, x: Tensor) -> Tensor:
        return self._run_net(self._memory_format(self.preprocess(x)))

    def _run_net(self, x: Tensor) -> Tensor:
        return self.net(x) if self._compiled_net is None else self._compiled_net(x)

    def _memory_format(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def setup(self, stage: str) -> None:
        fitted = getattr(self.preprocess, "fitted", None)
        if stage == "fit" and fitted is not None and not bool(fitted):
            from trainlab.data.datamodule import train_images

            self.preprocess.fit(train_images(self.trainer.datamodule))

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy against class indices ``[N]`` or class probabilities ``[N, C]`` (mixed, smoothed)."""
        return F.cross_entropy(logits, target)

    # ---- steps: update metrics on the device, no host synchronisation ----
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        x = self.techniques.on_pixels(x)
        x = self.preprocess(x)
        x = self.techniques.on_normalized(x)
        x, target = self.techniques.on_batch(x, y, self.num_classes)
        logits = self._run_net(self._memory_format(x))
        n = len(x)
        sums = self.train_sums
        if logits.ndim == 3:  # an ensemble's members [K, N, C]: each learns from its own loss
            loss = sum(self.loss(member, target) for member in logits)
            sums[0].add_(loss.detach(), alpha=n / len(logits))  # the mean member's loss
            logits = torch.logsumexp(logits.detach().log_softmax(-1), dim=0)  # the ensemble's prediction
        else:
            loss = self.loss(logits, target)
            sums[0].add_(loss.detach(), alpha=n)
        sums[1].add_((logits.detach().argmax(-1) == hard_labels(y)).sum())
        self._train_samples += n
        self._train_steps += 1
        bad = ~torch.isfinite(loss.detach()) & (self.first_bad_step < 0)
        self.first_bad_step.copy_(torch.where(bad, self.global_step, self.first_bad_step))
        reg = self.techniques.loss_term(self.net)
        if reg is not None:
            sums[2].add_(reg.detach())
            loss = loss + reg
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], loss_metric: MeanMetric, acc_metric) -> None:
        x, y = batch
        logits = self(x)
        loss_metric.update(self.loss(logits, y), weight=len(x))
        acc_metric.update(logits, hard_labels(y))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_loss, self.test_acc)

    # ---- epoch ends: compute (synchronised across processes by torchmetrics), log, reset ----
    def _log_epoch(self, stage: str, loss_metric: MeanMetric, acc_metric) -> Tensor:
        acc = acc_metric.compute()
        # the values are already reduced over processes by torchmetrics; sync_dist only tells Lightning so
        self.log(f"{stage}/loss", loss_metric.compute(), prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=True, sync_dist=True)
        loss_metric.reset()
        acc_metric.reset()
        return acc

    def _log_train_epoch(self) -> None:
        """train/loss, train/acc (and train/reg_loss) of the epoch, summed over processes; then reset."""
        counts = torch.tensor([self._train_samples, self._train_steps], dtype=self.train_sums.dtype)
        totals = torch.cat([self.train_sums, counts.to(self.train_sums.device)])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")  # the identity on one device
        samples, steps = totals[3].clamp(min=1), totals[4].clamp(min=1)
        self.log("train/loss", totals[0] / samples, prog_bar=True)
        self.log("train/acc", totals[1] / samples, prog_bar=True)
        if self.techniques.loss_terms:
            self.log("train/reg_loss", totals[2] / steps)
        self.train_sums.zero_()
        self._train_samples = self._train_steps = 0

    def on_validation_epoch_start(self) -> None:
        self._check_divergence()

    def on_train_epoch_end(self) -> None:
        self._check_divergence()
        self._log_train_epoch()
        metrics = self.trainer.callback_metrics  # this epoch's values, already reduced: one host sync per epoch
        keys = ("train/loss", "train/acc", "val/loss", "val/acc")
        self.history.append({"epoch": self.current_epoch} | {k: float(metrics[k]) for k in keys if k in metrics})

    def on_validation_epoch_end(self) -> None:
        acc = self._log_epoch("val", self.val_loss, self.val_acc)
        if not self.trainer.sanity_checking:  # the sanity check's untrained accuracy is not a "best"
            self.val_acc_best.update(acc)
        if self.val_acc_best.update_called:
            self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_acc)

    def _check_divergence(self) -> None:
        """Stop before the diverged weights are validated or checkpointed, so the last checkpoint stays good."""
        if self.trainer.sanity_checking or not self.training or not self.divergence_guard:
            return
        step = int(self.first_bad_step)  # one host synchronisation per epoch
        if step >= 0:
            lr = self.trainer.optimizers[0].defaults["lr"] if self.trainer.optimizers else float("nan")
            raise DivergenceError(
                f"the training loss became NaN/inf at step {step} (epoch {self.current_epoch}): training stopped. "
                f"Try a lower learning rate (optimizer.lr={lr:.3g} now; e.g. optimizer.lr={lr / 10:.3g}) or another "
                "init. The checkpoints written before it are intact."
            )

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
        # the cosine's horizon as configured for this run; a resumed run's restored schedule may have another
        self._cosine_plan = (
            (scheduler.T_max, scheduler.eta_min)
            if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
            else None
        )
        config = {"scheduler": scheduler, "interval": self.scheduler_interval, "frequency": 1}
        if self.scheduler_monitor:
            config["monitor"] = self.scheduler_monitor
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_train_start(self) -> None:
        self._replan_cosine()
        configs = self.trainer.lr_scheduler_configs
        scheduler = configs[0].scheduler if configs else None
        if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR):  # a checkpoint without its max_epochs
            needed = int(self.trainer.estimated_stepping_batches)
            if scheduler.total_steps < needed:
                from trainlab.validate import ConfigError

                planned = f"{scheduler.total_steps} steps, this run needs {needed}"
                raise ConfigError(_one_cycle_refusal(planned, self.trainer.max_epochs))

    def _replan_cosine(self) -> None:
        """Continue a resumed cosine schedule to this run's horizon when the checkpoint's was another.

        Lightning restores the scheduler's state (its ``T_max`` included) after ``configure_optimizers``, so a run
        resumed with a larger ``trainer.max_epochs`` would keep the old horizon: the learning rate reaches
        ``eta_min`` (0) at the old end and training stops moving. Here, at the resume point ``e`` (in scheduler
        steps: epochs, or batches with ``interval: step``), the remaining schedule is re-planned as a cosine from
        ``lr_e`` at ``e`` down to ``eta_min`` at the new end ``M``:

            lr(t) = eta_min + (lr_e - eta_min) * (1 + cos(pi * (t - e) / (M - e))) / 2,   e <= t <= M

        where ``lr_e`` is the learning rate the old schedule had reached at ``e``, or, if the old schedule had
        already ended (``e >= `` its horizon, where its learning rate is ``eta_min``), the optimizer's base learning
        rate (a warm restart). The re-planned scheduler keeps its start (``trainlab_offset``) in its state, so
        resuming it again with the same horizon is exact; a resume with the checkpoint's own horizon changes nothing.
        """
        plan = getattr(self, "_cosine_plan", None)
        configs = self.trainer.lr_scheduler_configs if plan is not None else []
        if not configs or not isinstance(configs[0].scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            return
        scheduler, (new_end, eta_min) = configs[0].scheduler, plan
        offset = int(getattr(scheduler, "trainlab_offset", 0))
        old_end, now = offset + scheduler.T_max, offset + scheduler.last_epoch
        if old_end == new_end or now >= new_end:  # the planned horizon, or nothing left to train
            return
        groups = scheduler.optimizer.param_groups
        ended = scheduler.last_epoch >= scheduler.T_max
        starts = [float(g["initial_lr"]) if ended else float(g["lr"]) for g in groups]
        for group, lr in zip(groups, starts, strict=True):
            group["lr"] = lr
        scheduler.base_lrs, scheduler._last_lr = list(starts), list(starts)
        scheduler.T_max, scheduler.eta_min, scheduler.last_epoch = new_end - now, eta_min, 0
        scheduler.trainlab_offset = now  # saved with the scheduler's state (its __dict__)
        unit = "epoch" if configs[0].interval == "epoch" else "step"
        if self.trainer.is_global_zero:
            restart = " (the old schedule had ended: a restart)" if ended else ""
            log.info(
                f"resumed at {unit} {now} of a schedule planned for {old_end} {unit}s; re-planned the remaining "
                f"cosine to {new_end} {unit}s (from lr {starts[0]:.4g}{restart} down to eta_min {eta_min:g})"
            )

    # ---- checkpoints carry the config and the random state ----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["trainlab"] = {"config": self.config, "rng": _rng_state(), "history": self.history}
        if self._trainer is not None:  # the horizon the schedule was planned for (see schedule_resume_error)
            checkpoint["trainlab"]["max_epochs"] = self.trainer.max_epochs

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("trainlab", {}).get("rng")
        if rng is not None and self.trainer.state.fn == "fit":
            _set_rng_state(rng)
            self.history = list(checkpoint["trainlab"].get("history", []))


def schedule_resume_error(checkpoint: Mapping[str, Any], max_epochs: int | None) -> str | None:
    """Why a checkpoint's learning-rate schedule cannot continue to ``max_epochs``, or None.

    A one-cycle schedule (``OneCycleLR``) is planned for a fixed number of steps and cannot step past them; unlike
    a cosine (re-planned to the new horizon by :meth:`Classifier._replan_cosine`) it is not extended.
    """
    states = checkpoint.get("lr_schedulers") or []
    old = (checkpoint.get("trainlab") or {}).get("max_epochs")
    if not states or "total_steps" not in states[0] or not isinstance(old, int) or not isinstance(max_epochs, int):
        return None
    if old < 1 or max_epochs <= old:  # -1: no limit
        return None
    return _one_cycle_refusal(f"trainer.max_epochs={old} ({states[0]['total_steps']} steps)", max_epochs, old)


def _one_cycle_refusal(planned: str, max_epochs: int, old: int | None = None) -> str:
    again = f"trainer.max_epochs={old}" if old is not None else "the checkpoint's trainer.max_epochs"
    return (
        f"scheduler=onecycle cannot extend a run: the checkpoint's cycle was planned for {planned} and ends there, "
        f"this run asks for trainer.max_epochs={max_epochs}. Resume with {again}, or start a new run"
    )


#: attributes set many times per training step that are never parameters, buffers or modules
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_train_samples", "_train_steps"})


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
