"""Weight averaging: ``ensemble=ema`` and ``ensemble=swa``, on top of Lightning's ``WeightAveraging`` callback.

* EMA / Polyak averaging: after every optimizer step w_ema <- decay * w_ema + (1 - decay) * w (Lightning's
  ``EMAWeightAveraging``; BatchNorm buffers are averaged the same way). Validation, checkpoint selection and the
  test use the averaged weights; every checkpoint also keeps the raw weights (``current_model_state``).
* SWA (Izmailov, Podoprikhin, Garipov, Vetrov, Wilson, UAI 2018): the equal average of the weights at the end of
  every epoch from ``swa_epoch_start`` on; BatchNorm statistics are then recomputed with one pass over the training
  images (in order, without augmentation; the statistics of averaged weights are not the average of the
  statistics), and the result is saved as ``swa.ckpt``, which is what the run tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import EMAWeightAveraging, WeightAveraging

from trainlab.ensembles import Ensemble, ensemble_report, test_probabilities
from trainlab.settings import Setting, checked


class _TestsTheAverage(Ensemble):
    """Testing a checkpoint tests its averaged weights (its ``state_dict``). Lightning's ``WeightAveraging`` would
    load the raw weights (``current_model_state``) into the model whenever a checkpoint is loaded, the test's too;
    here that happens only when fit resumes. The report compares the raw network at the tested checkpoint (the
    "member") with the averaged one (the "ensemble")."""

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == "fit":
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def report(self, trainer, module, x, y):
        batch = getattr(trainer.datamodule, "eval_batch_size", 256)
        tested = self.load(trainer.ckpt_path, module.device)
        averaged = test_probabilities(module, tested["state_dict"], x, batch)
        raw_state = tested.get("current_model_state") or self.load(self.last_ckpt, module.device)["current_model_state"]
        raw = test_probabilities(module, raw_state, x, batch)
        return ensemble_report([raw], y, ensemble_probs=averaged)


class EMA(_TestsTheAverage, EMAWeightAveraging):
    """Exponential moving average of the weights (Polyak averaging), Lightning's ``EMAWeightAveraging``:
    ``w_ema <- decay w_ema + (1 - decay) w`` after every optimizer step."""

    @checked
    def __init__(
        self,
        decay: Annotated[float, Setting("EMA decay", low=0, high=1, low_open=True, high_open=True)] = 0.999,
        **kwargs: Any,
    ) -> None:
        super().__init__(decay=decay, **kwargs)


class SWA(_TestsTheAverage, WeightAveraging):
    @checked
    def __init__(
        self,
        swa_epoch_start: Annotated[
            float, Setting("when SWA starts (share of the epochs)", low=0, high=1, low_open=True, high_open=True)
        ] = 0.75,
        dirpath: str = "checkpoints",
        **kwargs: Any,
    ) -> None:
        super().__init__(use_buffers=False, **kwargs)
        self.swa_epoch_start = swa_epoch_start
        self.dirpath = Path(dirpath)
        #: the checkpoint the run tests (the average with recomputed BatchNorm statistics), once saved
        self.result_checkpoint: str | None = None
        self._first_epoch = 0

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._first_epoch = int(self.swa_epoch_start * (trainer.max_epochs or 1))

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return epoch_idx is not None and epoch_idx >= self._first_epoch

    @torch.no_grad()
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)  # the averaged weights into the model
        norms = [m for m in pl_module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if norms:
            momenta = [norm.momentum for norm in norms]
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None  # a cumulative average over the pass, as torch.optim.swa_utils.update_bn
            was_training = pl_module.training
            pl_module.train()
            from trainlab.data.datamodule import train_images

            datamodule = trainer.datamodule
            for x in train_images(datamodule).split(
                getattr(datamodule, "batch_size", 256)
            ):  # in order, without augmentation
                pl_module(x.to(pl_module.device))
            pl_module.train(was_training)
            for norm, momentum in zip(norms, momenta, strict=True):
                norm.momentum = momentum
        # keep the averaged model's copy in step, so that checkpoints carry the recomputed statistics
        for average, current in zip(self._average_model.module.buffers(), pl_module.buffers(), strict=True):
            average.copy_(current)
        self.result_checkpoint = str(self.dirpath / "swa.ckpt")
        trainer.save_checkpoint(self.result_checkpoint, weights_only=True)
