"""SIGUSR1 under SLURM: the run saves interrupted.ckpt, then Lightning's auto-requeue handler requeues the job
(``scontrol requeue $SLURM_JOB_ID``, stubbed here by a script on PATH); the saved checkpoint continues the run to
exactly where an uninterrupted run ends. Outside SLURM, SIGUSR1 still stops the run (tests/test_interrupt.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.demos.boring_classes import BoringModel
from pytorch_lightning.utilities.exceptions import SIGTERMException

from trainlab.callbacks.interrupt import GracefulInterrupt

from .conftest import BIN

JOB_ID = "4242"


def slurm_env(tmp_path: Path) -> dict[str, str]:
    """The variables of a one-task SLURM batch job (Lightning detects a SLURMEnvironment), and a stub scontrol."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    stub = stub_dir / "scontrol"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
    stub.chmod(0o755)
    return {
        "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_ID": JOB_ID,
        "SLURM_JOB_NAME": "trainlab-job",
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
    }


def scontrol_calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "scontrol.calls"
    return calls.read_text().splitlines() if calls.exists() else []


class SendAt(Callback):
    """Send a signal to this process at one training batch."""

    def __init__(self, batch: int, signum: int = signal.SIGUSR1) -> None:
        self.batch, self.signum = batch, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.batch:
            os.kill(os.getpid(), self.signum)


def fit_and_signal(tmp_path: Path, *callbacks: Callback, **trainer_kwargs) -> tuple[Trainer, GracefulInterrupt]:
    """Fit a small model, send SIGUSR1 at step 5: the trainer stops with a SIGTERMException (as it does for SIGTERM)."""
    interrupt = GracefulInterrupt(tmp_path / "checkpoints")
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        limit_train_batches=8,
        limit_val_batches=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[interrupt, *callbacks, SendAt(5)],
        **trainer_kwargs,
    )
    with pytest.raises(SIGTERMException):
        trainer.fit(BoringModel())
    return trainer, interrupt


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    for key, value in slurm_env(tmp_path).items():
        monkeypatch.setenv(key, value)


def test_under_slurm_sigusr1_saves_then_lets_lightning_requeue(tmp_path, slurm):
    previous = signal.getsignal(signal.SIGUSR1)
    trainer, interrupt = fit_and_signal(tmp_path, plugins=[SLURMEnvironment(auto_requeue=True)])
    assert scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"]
    assert interrupt.saved == tmp_path / "checkpoints" / "interrupted.ckpt" and interrupt.signal == signal.SIGUSR1
    saved = torch.load(interrupt.saved, weights_only=True)
    assert saved["global_step"] == 5  # the state after the batch the signal arrived in
    hpc = torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=True)  # Lightning's own requeue checkpoint
    assert hpc["global_step"] == 5
    assert signal.getsignal(signal.SIGUSR1) == previous  # nothing of the run is left installed


def test_slurm_is_detected_from_the_environment_as_on_a_cluster(tmp_path, slurm):
    trainer, interrupt = fit_and_signal(tmp_path)
    assert isinstance(trainer._accelerator_connector.cluster_environment, SLURMEnvironment)
    assert scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"] and interrupt.saved.exists()


def test_without_auto_requeue_or_slurm_nothing_is_requeued(tmp_path, slurm):
    trainer, interrupt = fit_and_signal(tmp_path, plugins=[SLURMEnvironment(auto_requeue=False)])
    assert scontrol_calls(tmp_path) == [] and interrupt.saved.exists()
    assert not (tmp_path / "hpc_ckpt_1.ckpt").exists()


def test_a_handler_installed_before_the_run_is_called_after_the_save(tmp_path):
    calls = []

    def user_handler(signum, frame):
        calls.append((signum, (tmp_path / "checkpoints" / "interrupted.ckpt").exists()))

    previous = signal.signal(signal.SIGUSR1, user_handler)
    try:
        trainer, interrupt = fit_and_signal(tmp_path)
        assert calls == [(signal.SIGUSR1, True)]  # chained, once, after interrupted.ckpt was written
        assert signal.getsignal(signal.SIGUSR1) is user_handler  # and given back
    finally:
        signal.signal(signal.SIGUSR1, previous)


class InstallInSetup(Callback):
    """Listed after GracefulInterrupt: installs ``handler`` for SIGUSR1 in its own setup (another order of hooks)."""

    def __init__(self, handler) -> None:
        self.handler = handler

    def setup(self, trainer, pl_module, stage) -> None:
        signal.signal(signal.SIGUSR1, self.handler)


def test_when_lightning_installs_its_handler_first_ours_wraps_it(tmp_path, slurm):
    """A handler reset after ours (SIG_DFL): Lightning installs its SLURM handler, ours wraps it; one requeue."""
    trainer, interrupt = fit_and_signal(tmp_path, InstallInSetup(signal.SIG_DFL))
    assert scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"]
    assert torch.load(interrupt.saved, weights_only=True)["global_step"] == 5


def test_a_handler_installed_over_ours_is_wrapped_and_slurm_still_requeues(tmp_path, slurm):
    calls = []

    def other(signum, frame):
        calls.append(signum)

    try:
        trainer, interrupt = fit_and_signal(tmp_path, InstallInSetup(other))
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    assert calls == [signal.SIGUSR1] and scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"]
    assert interrupt.saved.exists()


# ---- end to end: the console script, as a user types it (progress bar, model summary, config tree, csv logger) ----
RUN = [
    "seed=3",
    "trainer.deterministic=true",
    "trainer.max_epochs=4",
    "trainer.accelerator=cpu",
    "model.width=256",
    "data.batch_size=16",
]


def start(run_dir: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "trainlab-train"), *RUN, f"hydra.run.dir={run_dir}", *extra],
        cwd=run_dir.parent,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_trainlab_train_under_slurm_saves_requeues_and_resumes_exactly(tmp_path):
    env = slurm_env(tmp_path)
    run_dir = tmp_path / "preempted"
    proc = start(run_dir, env)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            if torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] >= 1:
                break
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.05)
    time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it was signalled"
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-3000:]
    assert "Traceback" not in out + err
    assert scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"]
    ckpt = run_dir / "checkpoints" / "interrupted.ckpt"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["resume"] == f"ckpt_path={ckpt}"
    saved = torch.load(ckpt, weights_only=True)
    assert 0 < saved["global_step"] == metrics["steps"]
    assert (run_dir / "hpc_ckpt_1.ckpt").exists()

    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    for target, extra in ((resumed, [f"ckpt_path={ckpt}"]), (straight, [])):
        proc = start(target, env, *extra)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    a = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] > saved["global_step"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])  # bit for bit
    assert scontrol_calls(tmp_path) == [f"requeue {JOB_ID}"]  # the runs that were not signalled requeued nothing
