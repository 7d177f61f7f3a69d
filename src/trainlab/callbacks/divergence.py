"""Stop training at the first NaN or infinite training loss, before the diverged weights are validated or saved."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback

from trainlab.errors import DivergenceError


class DivergenceGuard(Callback):
    """Raise :class:`DivergenceError` when a training loss of this fit was NaN or infinite.

    Every step records, on the device, the first step whose loss was not finite (no host synchronisation per
    step); that record is read once before each validation and at the end of each training epoch, so validation
    never runs on diverged weights and no checkpoint is written from them: the last checkpoint stays good. The
    error names the step and suggests a learning rate.
    """

    #: "no bad step yet": larger than any step number
    NONE = torch.iinfo(torch.int64).max

    def __init__(self) -> None:
        self.first_bad_step: torch.Tensor | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.first_bad_step = None

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        step = torch.where(torch.isfinite(loss.detach()), self.NONE, trainer.global_step)
        self.first_bad_step = step if self.first_bad_step is None else torch.minimum(self.first_bad_step, step)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.check(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.check(trainer)

    def check(self, trainer) -> None:
        """Raise :class:`DivergenceError` if a loss so far was not finite (reads the record: one host sync)."""
        if self.first_bad_step is None or (step := int(self.first_bad_step)) == self.NONE:
            return
        lr = trainer.optimizers[0].defaults["lr"] if trainer.optimizers else float("nan")
        raise DivergenceError(
            f"the training loss became NaN/inf at step {step} (epoch {trainer.current_epoch}): training stopped. "
            f"Try a lower learning rate (optimizer.lr={lr:.3g} now; e.g. optimizer.lr={lr / 10:.3g}) or another "
            "init. The checkpoints written before it are intact."
        )
