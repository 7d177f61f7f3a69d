"""Lightning's ModelCheckpoint, with the best score carried over when a run resumes in a new directory; atomic saves."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

from trainlab.callbacks.lean import CachedStateKey


class ModelCheckpoint(CachedStateKey, LightningModelCheckpoint):
    """Keep the best and the last checkpoint, also across ``ckpt_path=...`` resumes; ``last.ckpt`` is the state at
    the end of the latest epoch (Lightning's is the state of the latest improvement).

    Every trainlab run writes into its own directory, so a resumed run's ``dirpath`` differs from the one in the
    checkpoint. Lightning then forgets the best score and would call the first epoch after the resume "best"
    even when an earlier epoch was better. Here the score and the top-k bookkeeping are restored in any case;
    the earlier best file stays where it is (Lightning never deletes files outside the current ``dirpath``), and
    testing "the best checkpoint" picks it if no later epoch beats it. Everything else is Lightning's.
    """

    # Lightning (2.6) rewrites `last.ckpt` only at a step where it also saved a top-k checkpoint, i.e. when the
    # monitored metric improved: after the best epoch, "last" would stay behind, and a resume from it would
    # redo every epoch since. Here `last.ckpt` is written at the end of every epoch, as its name says.
    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_every_epoch(trainer)

    def _save_last_every_epoch(self, trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        self.best_model_score = state_dict["best_model_score"]
        self.best_model_path = state_dict["best_model_path"]
        self.best_k_models = state_dict.get("best_k_models", self.best_k_models)
        self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
        self.kth_value = state_dict.get("kth_value", self.kth_value)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint to ``<name>.tmp`` in its own directory, flush it to disk, then rename it into place.

    A rename within one directory is atomic, so a run killed while saving (kill -9, power loss, a full disk)
    leaves the previous checkpoint of that name whole, never a truncated file. Lightning's own save goes through
    a temporary file in the system's temp directory, which is a copy, not a rename, when that is another file
    system. Loading is Lightning's.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            with _ctrl_c_after_this():
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            if err.filename is None:  # a failed write names no file: name the checkpoint (a full disk, say)
                raise OSError(err.errno, err.strerror or str(err), str(path)) from err
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


@contextmanager
def _ctrl_c_after_this() -> Iterator[None]:
    """Hold back ctrl-C (SIGINT) while a checkpoint is written and raise it once the file is in place.

    A KeyboardInterrupt inside ``torch.save`` breaks its zip writer with an unrelated error, which would hide the
    interruption from the run's clean stop (``interrupted.ckpt``, ``status: interrupted``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if received:
        raise KeyboardInterrupt
