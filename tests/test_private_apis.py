"""The private Lightning (and torch) APIs trainlab relies on, pinned: an upgrade that changes one fails here, by name,
before the feature built on it breaks quietly. Each test says who relies on it; the end-to-end tests of those
features (test_interrupt, test_slurm_requeue, test_early_stopping, test_ddp, test_resume_schedule) stay the proof.
"""

from __future__ import annotations

import inspect
import signal

import pytest
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.demos.boring_classes import BoringModel
from pytorch_lightning.utilities.exceptions import SIGTERMException


def small_trainer(tmp_path, *callbacks: Callback, **kwargs) -> Trainer:
    return Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=8,
        limit_val_batches=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=list(callbacks),
        **kwargs,
    )


# ---- trainlab.callbacks.interrupt (SIGUSR1 stops the run like SIGTERM, and chains to SLURM's requeue) ----


def test_setting_the_signal_connectors_sigterm_flag_stops_the_fit_after_that_batch(tmp_path):
    """GracefulInterrupt's SIGUSR1 handler sets ``trainer._signal_connector.received_sigterm``: Lightning then
    stops after the batch with a SIGTERMException (its callbacks' on_exception saves), as for SIGTERM, and in DDP
    broadcasts the flag so that every process stops at the same batch."""

    class Flag(Callback):
        def __init__(self) -> None:
            self.exceptions: list[type] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx == 2:
                trainer._signal_connector.received_sigterm = True

        def on_exception(self, trainer, pl_module, exception) -> None:
            self.exceptions.append(type(exception))

    flag = Flag()
    trainer = small_trainer(tmp_path, flag)
    with pytest.raises(SIGTERMException):
        trainer.fit(BoringModel())
    assert trainer.received_sigterm and trainer.global_step == 3 and flag.exceptions == [SIGTERMException]


def test_lightnings_slurm_requeue_handler_and_the_handlers_it_restores(tmp_path, monkeypatch):
    """_slurm_requeue_handler reads ``trainer._accelerator_connector.cluster_environment`` (the SLURMEnvironment
    with ``auto_requeue``) and chains ``trainer._signal_connector._slurm_sigusr_handler_fn``; GracefulInterrupt
    edits ``trainer._signal_connector._original_handlers`` (what Lightning re-installs at the end of the run)."""
    for key, value in {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "job"}.items():
        monkeypatch.setenv(key, value)
    trainer = small_trainer(tmp_path, plugins=[SLURMEnvironment(auto_requeue=True)])
    environment = trainer._accelerator_connector.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.auto_requeue
    connector = trainer._signal_connector
    previous_term = signal.getsignal(signal.SIGTERM)
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    try:
        connector.register_signal_handlers()  # what Lightning does when a fit starts
        installed = signal.getsignal(signal.SIGUSR1)
        assert connector._slurm_sigusr_handler_fn in installed.signal_handlers  # Lightning's composition of handlers
        assert connector._original_handlers[signal.SIGUSR1] == signal.SIG_DFL
        connector._original_handlers[signal.SIGUSR1] = signal.SIG_IGN
        connector.teardown()  # at the end of the run: the (edited) original handler is back
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGUSR1, previous)


# ---- trainlab.callbacks.ModelCheckpoint (last.ckpt at every epoch's end) ----


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("_should_save_on_train_epoch_end", ["trainer"]),
        ("_should_skip_saving_checkpoint", ["trainer"]),
        ("_save_last_checkpoint", ["trainer", "monitor_candidates"]),
        ("_monitor_candidates", ["trainer"]),
    ],
)
def test_lightnings_model_checkpoint_has_the_methods_ours_calls(name, parameters):
    method = getattr(LightningModelCheckpoint, name)
    assert list(inspect.signature(method).parameters)[1:] == parameters


# ---- trainlab.ddp and trainlab.train (the DDP launchers that replace Lightning's) ----


def test_lightnings_launchers_have_what_trainlabs_replacements_use():
    from lightning_fabric.utilities.distributed import _set_num_threads_if_needed  # noqa: F401
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.strategies import DDPStrategy
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    assert list(inspect.signature(_SubprocessScriptLauncher).parameters) == [
        "cluster_environment",
        "num_processes",
        "num_nodes",
    ]
    assert callable(_SubprocessScriptLauncher._call_children_scripts)
    for name in ("get_extra_results", "update_main_process_results"):
        assert callable(getattr(_MultiProcessingLauncher, name))
    launcher = _MultiProcessingLauncher(DDPStrategy(), start_method="spawn")
    assert launcher._strategy is not None and launcher._start_method == "spawn"
    assert DDPStrategy()._launcher is None  # set by the strategy; trainlab.train swaps in its own
    csv = CSVLogger("unused")
    assert isinstance(csv.experiment.metrics_keys, list) and csv._experiment is csv.experiment


# ---- trainlab.classifier (torch: a re-planned cosine schedule) ----


def test_a_schedulers_last_lr_is_what_get_last_lr_returns():
    """Classifier._replan_cosine sets ``scheduler._last_lr`` (no public setter) for the re-planned start."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4)
    scheduler._last_lr = [0.05]
    assert scheduler.get_last_lr() == [0.05]
