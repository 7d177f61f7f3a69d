"""Stop a run cleanly on ctrl-C (SIGINT), SIGTERM or SIGUSR1 (SLURM-style preemption), keeping its progress.

Lightning turns SIGTERM into an exception after the current batch and ctrl-C into a ``KeyboardInterrupt``; both
reach the callbacks' ``on_exception``. There :class:`GracefulInterrupt` saves ``interrupted.ckpt`` (the state after
the last finished batch, written atomically) next to the other checkpoints; ``trainlab-train`` then writes
``metrics.json`` with ``status: interrupted`` and the checkpoint's path, prints how to continue
(``ckpt_path=<that path>``), and exits with 128 + the signal number (130 for ctrl-C, 143 for SIGTERM, 138 for
SIGUSR1) without a traceback. SIGUSR1, which SLURM sends before preempting a job (``--signal=USR1@60``), is
handled like SIGTERM.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback
from pytorch_lightning.utilities.exceptions import SIGTERMException

log = logging.getLogger("trainlab")


class GracefulInterrupt(Callback):
    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None
        self.signal: int | None = None
        self._previous_usr1: Any = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit" or not hasattr(signal, "SIGUSR1"):
            return

        def on_usr1(signum, frame) -> None:  # stop after the current batch, as Lightning does for SIGTERM
            log.warning("received SIGUSR1: stopping after this batch and saving a checkpoint")
            self.signal = signum
            trainer._signal_connector.received_sigterm = True

        try:
            self._previous_usr1 = signal.signal(signal.SIGUSR1, on_usr1)
        except ValueError:  # not the main thread
            self._previous_usr1 = None

    def teardown(self, trainer, pl_module, stage: str) -> None:
        if self._previous_usr1 is not None:
            signal.signal(signal.SIGUSR1, self._previous_usr1)
            self._previous_usr1 = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException) or trainer.state.fn != "fit":
            return
        if self.signal is None:
            self.signal = signal.SIGINT if isinstance(exception, KeyboardInterrupt) else signal.SIGTERM
        path = self.dirpath / "interrupted.ckpt"
        trainer.save_checkpoint(path)
        self.saved = path
        log.warning(f"interrupted by signal {int(self.signal)}: saved {path}")
