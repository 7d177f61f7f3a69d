"""Stop a run cleanly on ctrl-C (SIGINT), SIGTERM or SIGUSR1 (SLURM-style preemption), keeping its progress.

Lightning turns SIGTERM into an exception after the current batch and ctrl-C into a ``KeyboardInterrupt``; both
reach the callbacks' ``on_exception``. There :class:`GracefulInterrupt` saves ``interrupted.ckpt`` (the state after
the last finished batch, written atomically) next to the other checkpoints; ``trainlab-train`` then writes
``metrics.json`` with ``status: interrupted`` and the checkpoint's path, prints how to continue
(``ckpt_path=<that path>``), and exits with 128 + the signal number (130 for ctrl-C, 143 for SIGTERM, 138 for
SIGUSR1) without a traceback. SIGUSR1, which SLURM sends before preempting a job (``--signal=USR1@60``), is
handled like SIGTERM.

SIGUSR1 composes with the handler that was there before, whichever was installed first. Lightning installs its
SLURM auto-requeue handler (save ``hpc_ckpt_<n>.ckpt``, ``scontrol requeue $SLURM_JOB_ID``) only when SIGUSR1 has
no handler yet, after the callbacks' ``setup``; so this callback installs its handler in ``setup`` (a signal during
the sanity check is not lost), and at ``on_train_start``, after Lightning's signal connector has run, either adds
Lightning's SLURM handler behind its own (under a ``SLURMEnvironment`` with ``auto_requeue``) or, if another handler
has replaced its own, wraps that one. The handlers it chains to run after ``interrupted.ckpt`` is saved, at the end
of the interrupted batch: the run is saved first, then requeued.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("trainlab")


class _Usr1Handler:
    """The SIGUSR1 handler: ask the trainer to stop after this batch; ``chain``: the handlers to call once saved."""

    def __init__(self, owner: GracefulInterrupt, trainer) -> None:
        self.owner, self.trainer = owner, trainer
        self.chain: list[Callable[..., Any]] = []

    def __call__(self, signum, frame) -> None:  # stop after the current batch, as Lightning does for SIGTERM
        log.warning("received SIGUSR1: stopping after this batch and saving a checkpoint")
        self.owner.signal = signum
        self.trainer._signal_connector.received_sigterm = True


def _slurm_requeue_handler(trainer) -> Callable[..., Any] | None:
    """Lightning's SLURM auto-requeue handler, when the trainer runs under a SLURMEnvironment with auto_requeue."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    environment = trainer._accelerator_connector.cluster_environment
    if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
        return trainer._signal_connector._slurm_sigusr_handler_fn
    return None


def _calls(handler: Any, function: Callable[..., Any]) -> bool:
    """Whether ``handler`` is ``function`` or one of Lightning's compositions of handlers that includes it."""
    return handler == function or function in getattr(handler, "signal_handlers", ())


class GracefulInterrupt(Callback):
    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None
        self.signal: int | None = None
        self._previous_usr1: Any = None
        self._handler: _Usr1Handler | None = None

    @staticmethod
    def _usr1() -> int | None:
        return getattr(signal, "SIGUSR1", None)

    def _install(self, trainer, wrapped: Any) -> bool:
        """Make our handler SIGUSR1's, calling ``wrapped`` (if a function) after the save; False off the main thread."""
        handler = _Usr1Handler(self, trainer)
        if callable(wrapped):
            handler.chain.append(wrapped)
        try:
            previous = signal.signal(self._usr1(), handler)
        except ValueError:  # not the main thread
            return False
        if self._handler is None:
            self._previous_usr1 = previous
        self._handler = handler
        return True

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self._usr1() is None:
            return
        self._install(trainer, signal.getsignal(self._usr1()))

    def on_train_start(self, trainer, pl_module) -> None:
        """After Lightning's signal connector: chain to its SLURM requeue handler, and to whatever replaced ours."""
        if self._usr1() is None or self._handler is None:
            return
        current = signal.getsignal(self._usr1())
        if current is not self._handler and not self._install(trainer, current):  # installed over ours: wrap it
            return
        # Lightning's connector gives back, when the run ends, the handlers it found: ours; the one before ours instead
        originals = getattr(trainer._signal_connector, "_original_handlers", {})
        if originals.get(self._usr1()) is current:
            originals[self._usr1()] = self._previous_usr1
        requeue = _slurm_requeue_handler(trainer)
        if requeue is not None and not any(_calls(handler, requeue) for handler in self._handler.chain):
            self._handler.chain.append(requeue)  # Lightning did not install it: a handler (ours) was there
        if requeue is not None:
            log.info("SLURM auto-requeue: on SIGUSR1 the run saves interrupted.ckpt, then Lightning requeues the job")

    def _restore(self) -> None:
        if self._handler is not None and signal.getsignal(self._usr1()) is self._handler:
            try:
                signal.signal(self._usr1(), self._previous_usr1 if self._previous_usr1 is not None else signal.SIG_DFL)
            except ValueError:
                pass
        self._handler, self._previous_usr1 = None, None

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self._restore()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException) or trainer.state.fn != "fit":
            return
        usr1 = self._usr1() is not None and self.signal == self._usr1()
        if trainer.world_size > 1 and isinstance(exception, SIGTERMException):
            # Lightning stops every process at the same batch; SIGUSR1 may have reached only some of them
            usr1 = trainer.strategy.reduce_boolean_decision(usr1, all=False)
        if usr1:
            self.signal = self._usr1()
        if self.signal is None:
            self.signal = signal.SIGINT if isinstance(exception, KeyboardInterrupt) else signal.SIGTERM
        path = self.dirpath / "interrupted.ckpt"
        trainer.save_checkpoint(path)
        self.saved = path
        log.warning(f"interrupted by signal {int(self.signal)}: saved {path}")
        # now that the run is saved, the handlers ours wrapped (Lightning's SLURM requeue), in every process alike
        chain = self._handler.chain if usr1 and self._handler is not None else []
        for handler in chain:
            handler(int(self.signal), None)
        self._restore()
