"""The LightningModule: a network, its loss, its metrics, its optimizer and learning-rate schedule."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning import Callback, LightningModule
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric

from trainlab import rng
from trainlab.callbacks.divergence import DivergenceError, DivergenceGuard
from trainlab.callbacks.history import History
from trainlab.techniques import Techniques

log = logging.getLogger("trainlab")

#: keys of a scheduler config that trainlab reads and does not pass to the scheduler class
SCHEDULER_KEYS = ("interval", "monitor", "frequency")

__all__ = ["Classifier", "DivergenceError", "SCHEDULER_KEYS", "hard_labels", "schedule_resume_error"]


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
    always measured against the hard labels. Metrics (torchmetrics, one set per stage) are accumulated on the
    device without a host synchronisation per step, and computed, reduced over processes and logged once per
    epoch as ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/acc_best``, ``test/loss``,
    ``test/acc`` (and ``train/reg_loss``). A loss is the mean over the epoch's samples; an ensemble's training loss
    is its mean member's, its accuracy that of its prediction.

    Every fit also has two callbacks of its own (:meth:`configure_callbacks`, whatever the config's ``callbacks``
    say): :class:`~trainlab.callbacks.history.History`, the per-epoch curves (``model.history.epochs``) and
    :class:`~trainlab.callbacks.divergence.DivergenceGuard`, which stops training at the first NaN/inf loss
    (``divergence_guard = False`` leaves it out).

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
            the keyword arguments of ``torch.compile`` (``{"mode": "max-autotune"}``). The network is compiled in
            place (``nn.Module.compile``), so checkpoints keep its parameter names.
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
        if self.compile_options is not None:
            self.net.compile(**self.compile_options)

        # one set of metrics per stage, accumulated on the device: a loss is the mean over samples (_update_loss), the
        # accuracy the mean of "prediction == label" over samples (a mean's update costs a fraction of
        # MulticlassAccuracy's, which computes a confusion-matrix row per update)
        self.train_loss, self.train_acc = SampleMean(), _accuracy(num_classes)
        self.val_loss, self.val_acc = SampleMean(), _accuracy(num_classes)
        self.test_loss, self.test_acc = SampleMean(), _accuracy(num_classes)
        self.train_reg_loss = SampleMean()  # the mean over the steps
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # saved in checkpoints, so a resumed run keeps its best
        #: per-epoch train/val loss and accuracy (for curves.png and the diagnosis); stored in checkpoints
        self.history = History()
        #: stop training when the loss turns NaN/inf (off for the learning-rate range test, which diverges on purpose)
        self.divergence_guard = True

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a pickled or deep-copied module (ddp_spawn's workers get the module so) loses torch.compile's wrapper
        super().__setstate__(state)
        if self.compile_options is not None:
            self.net.compile(**self.compile_options)

    def configure_callbacks(self) -> list[Callback]:
        """The callbacks every fit of this module has, added to the trainer's (``callbacks=none`` included): the
        history, the divergence guard, and the techniques' own (an ensemble's)."""
        own = [DivergenceGuard(), self.history] if self.divergence_guard else [self.history]
        return own + self.technique_callbacks

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self._memory_format(self.preprocess(x)))

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
        logits = self.net(self._memory_format(x))
        if logits.ndim == 3:  # an ensemble's members [K, N, C]: each learns from its own loss
            loss = sum(self.loss(member, target) for member in logits)
            _update_loss(self.train_loss, loss / len(logits), len(x))  # the mean member's loss
            logits = torch.logsumexp(logits.detach().log_softmax(-1), dim=0)  # the ensemble's prediction
        else:
            loss = self.loss(logits, target)
            _update_loss(self.train_loss, loss, len(x))
        _update_accuracy(self.train_acc, logits.detach(), y)
        reg = self.techniques.loss_term(self.net)
        if reg is not None:
            self.train_reg_loss.update(reg.detach())
            loss = loss + reg
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], loss_metric: SampleMean, acc_metric: Metric) -> None:
        x, y = batch
        logits = self(x)
        _update_loss(loss_metric, self.loss(logits, y), len(x))
        _update_accuracy(acc_metric, logits, y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.val_loss, self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, self.test_loss, self.test_acc)

    # ---- epoch ends: compute (synchronised across processes by torchmetrics), log, reset ----
    # Speed: logged here, once per epoch. Logging the metric objects at every step instead (Lightning's usual idiom,
    # `self.log(name, metric, on_epoch=True)` in the step) made each step of benchmarks/bench_loop.py's digits MLP
    # 1.9 ms slower (5.0 -> 6.5 ms on a loaded 2-core VM; median of 8 paired runs).
    def _log_epoch(self, stage: str, loss_metric: SampleMean, acc_metric: Metric) -> Tensor:
        acc = acc_metric.compute()
        # the values are already reduced over processes by torchmetrics; sync_dist only tells Lightning so
        self.log(f"{stage}/loss", loss_metric.compute(), prog_bar=stage != "test", sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=True, sync_dist=True)
        loss_metric.reset()
        acc_metric.reset()
        return acc

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train", self.train_loss, self.train_acc)
        if self.techniques.loss_terms:
            self.log("train/reg_loss", self.train_reg_loss.compute(), sync_dist=True)
            self.train_reg_loss.reset()
        # here, not in History's own on_train_epoch_end: Lightning calls that before this hook, without this epoch's
        # training metrics
        self.history.record(self.trainer)

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

    # ---- checkpoints carry the config and the random state (and, from History, the epochs' curves) ----
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.setdefault("trainlab", {})
        saved.update(config=self.config, rng=rng.capture())
        if self._trainer is not None:  # the horizon the schedule was planned for (see schedule_resume_error)
            saved["max_epochs"] = self.trainer.max_epochs

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("trainlab", {}).get("rng")
        if state is not None and self.trainer.state.fn == "fit":
            rng.restore(state)


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


class SampleMean(MeanMetric):
    """The mean over samples of per-sample values: ``update(values)`` adds ``values.sum()`` and ``values.numel()``.

    A ``MeanMetric(nan_strategy="disable")`` in everything but the update's cost: the same states (``mean_value``,
    the sum, and ``weight``, the number of samples, both summed over processes by ``compute``), ``compute``,
    ``reset`` and checkpointing, and the same values to the bit (the sum of the same contiguous values). No NaN
    check: it would read the values on the host (a GPU synchronisation) at every update; a NaN makes the mean NaN.

    Speed: ``MeanMetric.update`` makes a tensor of ones as weights, casts and multiplies by them; this update adds
    the sum and the count in place. The training step's two updates (loss, accuracy) took 95 us, about 60 us this
    way: -0.035 ms per step of ``benchmarks/bench_loop.py``'s digits MLP (timeit, 2-core CPU, 2026-11-30).
    """

    def __init__(self) -> None:
        super().__init__(nan_strategy="disable")

    def update(self, values: Tensor) -> None:  # type: ignore[override]
        # contiguous(): a batch's loss comes as loss.expand(n); summing it materialised gives MeanMetric's values
        self.mean_value.add_(values.to(self.mean_value.dtype).contiguous().sum())
        self.weight.add_(values.numel())


def _accuracy(num_classes: int) -> SampleMean:
    """Accuracy over ``num_classes`` classes: the mean over samples of ``argmax(logits) == label``."""
    return SampleMean()


def _update_accuracy(metric: SampleMean, logits: Tensor, target: Tensor) -> None:
    metric.update((logits.argmax(-1) == hard_labels(target)).to(logits.dtype))


def _update_loss(metric: SampleMean, loss: Tensor, n: int) -> None:
    """Add a batch's mean loss to a mean over samples: the value once per sample of the batch."""
    metric.update(loss.detach().expand(n))
