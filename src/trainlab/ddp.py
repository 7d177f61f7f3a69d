"""DDP's processes, owned by the run (the job of a multirun) that starts them.

Two launchers replace Lightning's for one run; ``trainlab.train`` installs them before ``fit``:

* :class:`JobLauncher` (``strategy=ddp``): Lightning starts each extra process by re-running the command line.
  Lightning's own launcher watches those children with a thread that, when one of them exits with an error,
  SIGKILLs every process *including the launching one*: under ``-m`` a failing job then killed the whole sweep
  (rc 137), and the next job's child was left waiting for its rank 0 for half an hour. Here the children belong to
  the job: the job ends them when it ends (they finish on their own after a good run and are waited for; after a
  failure they are ended), the process group is torn down, and a child that fails only fails its job (rank 0's next
  collective fails at once when a gloo peer is gone). Only if rank 0 is still running :attr:`JobLauncher.grace_s`
  seconds after a child failed (stuck in a collective that never returns) is it ended as Lightning does.
* :class:`SpawnLauncher` (``strategy=ddp_spawn``): the training runs in spawned workers and Lightning sends back
  only the best checkpoint's path, the weights, the trainer's status and ``callback_metrics``. Here rank 0's
  worker also sends back the fit loop's progress (epochs, steps), the callbacks' state (best and last checkpoint,
  early stopping), the module's epoch history and the CSV logger's columns, so the main process's trainer is
  what the workers' was: ``metrics.json`` tells the truth, and testing after the fit appends to ``metrics.csv``.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from pytorch_lightning.trainer.states import TrainerFn

log = logging.getLogger("trainlab")


class JobLauncher(_SubprocessScriptLauncher):
    """Lightning's launcher of DDP child processes, with the children owned by the run.

    ``launch`` is Lightning's, but for the watcher: :class:`_ChildWatch` instead of Lightning's observer.
    """

    #: seconds rank 0 has, after a child failed, to notice it itself (gloo: at its next collective)
    grace_s = 120.0
    #: seconds the children have to exit on their own at the end of a good run, and after a failed one
    exit_s, failed_exit_s = 60.0, 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch: _ChildWatch | None = None

    @classmethod
    def like(cls, launcher: _SubprocessScriptLauncher) -> JobLauncher:
        return cls(launcher.cluster_environment, launcher.num_processes, launcher.num_nodes)

    def launch(self, function, *args: Any, trainer=None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self._watch = _ChildWatch(self.procs, self.grace_s)
            self._watch.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def end_children(self, failed: bool) -> None:
        """Stop watching, let the children exit (``exit_s``, or ``failed_exit_s`` after a failure), kill the rest.

        A child of a failed run may wait in a collective for a rank 0 that has given up: it is killed (SIGKILL: its
        SIGTERM handler would try to save a checkpoint, which needs rank 0). Non-zero ranks write no files.
        """
        if self._watch is not None:
            self._watch.stop()
        for rank, proc in enumerate(self.procs, start=1):
            code = proc.poll()
            if code not in (None, 0) and not (self._watch and self._watch.reported):
                log.error(f"the DDP process of rank {rank} exited with code {code} (its log says why)")
            try:
                proc.wait(timeout=self.failed_exit_s if failed else self.exit_s)
            except subprocess.TimeoutExpired:
                if not failed:
                    log.warning(f"the DDP process of rank {rank} (pid {proc.pid}) did not exit: ending it")
                proc.kill()
                proc.wait()


class _ChildWatch(threading.Thread):
    """Polls the children: when one fails, ends the others, and gives rank 0 ``grace_s`` seconds to end the run."""

    def __init__(self, procs: list[subprocess.Popen], grace_s: float) -> None:
        super().__init__(daemon=True, name="trainlab-ddp-children")
        self.procs, self.grace_s = procs, grace_s
        self._stopped = threading.Event()
        self.reported = False

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=5)

    def run(self) -> None:
        failed = None
        while failed is None and not self._stopped.wait(1.0):
            codes = [proc.poll() for proc in self.procs]
            if all(code == 0 for code in codes):
                return
            failed = next(((rank, code) for rank, code in enumerate(codes, start=1) if code not in (None, 0)), None)
        if failed is None:  # stopped
            return
        rank, code = failed
        log.error(f"the DDP process of rank {rank} exited with code {code}: this run fails (its log says why)")
        self.reported = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        if self._stopped.wait(self.grace_s):
            return
        log.error(f"rank 0 is still running {self.grace_s:.0f} s after rank {rank} failed (stuck): ending it")
        os.kill(os.getpid(), signal.SIGKILL)


#: attributes callbacks set during fit and read after it (trainlab.train.fit, trainlab.ensembles.Ensemble)
_AFTER_FIT = ("result_checkpoint", "last_ckpt", "fitted")


class SpawnLauncher(_MultiProcessingLauncher):
    """Lightning's ``ddp_spawn`` launcher; rank 0's worker also returns the state the run's report reads."""

    @classmethod
    def like(cls, launcher: _MultiProcessingLauncher) -> SpawnLauncher:
        return cls(launcher._strategy, launcher._start_method)

    def get_extra_results(self, trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        history = getattr(trainer.lightning_module, "history", None)
        state = {
            "fit_loop": trainer.fit_loop.state_dict(),
            # by state key, as in a checkpoint: the workers' trainer also has the module's own callbacks; and what
            # callbacks keep for after the fit: SWA's averaged checkpoint, an ensemble's last checkpoint
            "callbacks": {
                c.state_key: (c.state_dict(), {a: getattr(c, a, None) for a in _AFTER_FIT}) for c in trainer.callbacks
            },
            "history": list(history.epochs) if history is not None else [],
            "csv_columns": [_csv_columns(lg) for lg in trainer.loggers],
        }
        state = apply_to_collection(state, torch.Tensor, lambda t: t.detach().cpu())
        buffer = io.BytesIO()
        torch.save(state, buffer)  # as bytes, as Lightning sends its metrics: tensors in shared memory do not survive
        extra["trainlab_state_bytes"] = buffer.getvalue()
        return extra

    def update_main_process_results(self, trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        if "trainlab_state_bytes" not in extra:
            return
        state = torch.load(io.BytesIO(extra["trainlab_state_bytes"]), weights_only=True)
        for lg, columns in zip(trainer.loggers, state["csv_columns"], strict=False):
            mine = _csv_columns(lg)
            if columns is not None and mine is not None:  # a later stage adds to the workers' file, not rewrites it
                lg._experiment.metrics_keys[:] = columns
        if trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.fit_loop.load_state_dict(state["fit_loop"])
        trainer.fit_loop.restarting = False  # the state of a finished fit, not one to resume
        for callback in trainer.callbacks:
            callback_state, attrs = state["callbacks"].get(callback.state_key, ({}, {}))
            if callback_state:
                callback.load_state_dict(callback_state)
            for name, value in attrs.items():
                if value is not None:
                    setattr(callback, name, value)
        history = getattr(trainer.lightning_module, "history", None)
        if history is not None:
            history.epochs[:] = state["history"]


def _csv_columns(logger) -> list[str] | None:
    experiment = getattr(logger, "_experiment", None)
    columns = getattr(experiment, "metrics_keys", None)
    return list(columns) if isinstance(columns, list) else None


#: environment variables Lightning sets in the process that launches the DDP children
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def children_join_this_run(trainer) -> Iterator[None]:
    """Make DDP's child processes join this run's directory instead of starting runs of their own, and end with it.

    Lightning starts each extra DDP process by re-running this command line with ``hydra.run.dir`` set to
    ``hydra.run.dir`` of the parent. That is wrong under ``-m``: the job's directory is a sweep subdirectory, and
    the re-run command line still says ``-m``, so every child would start the whole sweep again (the "Hydra + DDP
    makes extra output directories" bug of other templates). Here the re-run command becomes this job's own
    overrides, and ``hydra.run.dir`` this job's output directory. The children append to the same log file
    (``<task_name>.log``) and, being non-zero ranks, write no checkpoints, metrics or logger files.

    The children belong to this run (:class:`trainlab.JobLauncher`): on exit they are waited for (a good run)
    or ended (a failed one, whichever rank failed), the process group is torn down and Lightning's environment
    variables are removed, so that the next job of a multirun launches its own children, and a failed job leaves no
    process behind. Under ``strategy=ddp_spawn`` the workers' state comes back to this process
    (:class:`trainlab.SpawnLauncher`).
    """
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    if isinstance(launcher, _MultiProcessingLauncher):
        trainer.strategy._launcher = SpawnLauncher.like(launcher)
        yield
        return
    if not (isinstance(launcher, _SubprocessScriptLauncher) and "LOCAL_RANK" not in os.environ):
        yield
        return
    launcher = trainer.strategy._launcher = JobLauncher.like(launcher)
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict, read_write

    argv = sys.argv
    if HydraConfig.initialized() and OmegaConf.select(HydraConfig.get(), "runtime.output_dir"):
        hydra_cfg = HydraConfig.get()
        with read_write(hydra_cfg), open_dict(hydra_cfg):
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
        sys.argv = [argv[0], *hydra_cfg.overrides.task]
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.argv = argv
        launcher.end_children(failed)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key in _DDP_ENV:
            os.environ.pop(key, None)
