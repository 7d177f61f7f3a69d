"""DDP end to end, as a user types it: progress bar on, config tree printed, default callbacks and CSV logger.

(tests/test_cli.py has the quiet DDP runs; these keep every default on, which once crashed rank 1's progress bar.)
Each end-to-end test also checks that no process of the run is left once the command has returned.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BIN, read_metrics

#: each of the 2 processes takes half of the 1,257 training images: ceil(628 / 64) = 10 steps per epoch
STEPS_PER_EPOCH = math.ceil((1257 // 2) / 64)


def env() -> dict[str, str]:
    full = {**os.environ, "OMP_NUM_THREADS": "1"}
    full.pop("HYDRA_FULL_ERROR", None)
    return full


def user(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``trainlab-train ...`` as typed; returns what it did, exit code included."""
    exe = str(BIN / args[0])
    return subprocess.run([exe, *args[1:]], cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)


def said(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"


def processes_of(root: Path) -> list[str]:
    """``pid: command line`` of every process working in ``root`` or naming it on its command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, or not ours to read
            continue
        if str(root) in cmdline or cwd == str(root) or cwd.startswith(f"{root}/"):
            found.append(f"{entry.name}: {cmdline}")
    return found


def no_process_left(root: Path) -> None:
    deadline = time.monotonic() + 10  # a killed process may take a moment to be reaped
    while processes_of(root) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_of(root), processes_of(root)


def shows_the_defaults(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert "CONFIG" in out  # the printed config tree
    assert "Epoch" in out and "━" in out  # the rich progress bar


def test_a_disabled_progress_bar_skips_its_batch_hooks():
    """Every rank but 0 disables its bar; Lightning then never records the current dataloader, and reading the
    batch totals (to decide whether to update) failed an assertion in rank 1's first validation batch."""
    from types import SimpleNamespace

    from trainlab.callbacks import ProgressBar

    bar = ProgressBar()
    bar.disable()
    trainer = SimpleNamespace(sanity_checking=False, num_val_batches=[3], num_training_batches=5, max_epochs=2)
    bar._trainer = trainer
    for batch_idx in range(3):
        bar.on_validation_batch_start(trainer, None, None, batch_idx)
        bar.on_validation_batch_end(trainer, None, None, None, batch_idx)
    bar.on_train_batch_end(trainer, None, None, None, 4)


@pytest.mark.slow
def test_ddp_cpu_with_every_default_on(tmp_path):
    """`trainlab-train trainer=ddp_cpu`: rank 1's (disabled) progress bar crashed in its validation hook."""
    proc = user(["trainlab-train", "trainer=ddp_cpu", "trainer.max_epochs=2"], tmp_path)
    assert proc.returncode == 0, said(proc)
    shows_the_defaults(proc)
    assert "Traceback" not in proc.stdout + proc.stderr, said(proc)
    (run_dir,) = (tmp_path / "logs/train/runs").iterdir()
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["stop_reason"] == "max_epochs"
    assert metrics["epochs"] == 2 and metrics["steps"] == 2 * STEPS_PER_EPOCH
    assert 0.0 < metrics["test/acc"] <= 1.0
    assert len(list(run_dir.rglob("metrics.csv"))) == 1
    no_process_left(tmp_path)


@pytest.mark.slow
def test_a_diverging_job_of_a_ddp_multirun_fails_alone(tmp_path):
    """Job 0 diverges on both ranks; job 1 still runs, the sweep exits 0, and no process of it is left.

    It used to end in rc 137 (Lightning's observer SIGKILLs the launching process when a child exits with an
    error), job 1 without metrics.json and its rank 1 orphaned, waiting for a rank 0 that was gone.
    """
    args = ["-m", "trainer=ddp_cpu", "optimizer=sgd", "optimizer.lr=1e9,0.1", "trainer.max_epochs=1"]
    proc = user(["trainlab-train", *args], tmp_path)
    assert proc.returncode == 0, said(proc)
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    diverged, good = read_metrics(sweep / "0"), read_metrics(sweep / "1")
    assert diverged["status"] == "diverged", diverged
    assert good["status"] == "completed" and good["steps"] == STEPS_PER_EPOCH, good
    assert 0.0 < good["test/acc"] <= 1.0
    assert not (tmp_path / "logs/train/runs").exists()
    no_process_left(tmp_path)


@pytest.mark.slow
def test_a_ddp_child_killed_mid_run_fails_its_job_and_the_sweep_goes_on(tmp_path):
    """Rank 1 of job 0 is killed (as by the out-of-memory killer) after its first epoch: rank 0 ends that job with
    status failed, job 1 runs to the end, the sweep exits 0, and no process of it is left."""
    out = tmp_path / "out.txt"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [str(BIN / "trainlab-train"), "-m", "trainer=ddp_cpu", "trainer.max_epochs=40,1"],
            cwd=tmp_path,
            env=env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            child = None
            deadline = time.monotonic() + 300
            while child is None and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
                if list(tmp_path.glob("logs/train/multiruns/*/0/checkpoints/last.ckpt")):  # an epoch is done
                    child = next(
                        (p for p in processes_of(tmp_path) if "train_ddp_process_1" in p and "max_epochs=40" in p), None
                    )
            assert child is not None, out.read_text()[-6000:]
            os.kill(int(child.split(":")[0]), signal.SIGKILL)
            rc = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 0, out.read_text()[-6000:]
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    failed, good = read_metrics(sweep / "0"), read_metrics(sweep / "1")
    assert failed["status"] == "failed", failed
    assert good["status"] == "completed" and good["steps"] == STEPS_PER_EPOCH, good
    no_process_left(tmp_path)


@pytest.mark.slow
def test_ddp_spawn_reports_what_its_workers_did(tmp_path):
    """`trainer.strategy=ddp_spawn`: training runs in spawned workers; metrics.json said epochs 0, steps 0,
    stop_reason other, last_ckpt None, and with the default CSV logger the test after the fit crashed."""
    proc = user(["trainlab-train", "trainer=ddp_cpu", "trainer.strategy=ddp_spawn", "trainer.max_epochs=2"], tmp_path)
    assert proc.returncode == 0, said(proc)
    shows_the_defaults(proc)
    (run_dir,) = (tmp_path / "logs/train/runs").iterdir()
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["stop_reason"] == "max_epochs", metrics
    assert metrics["epochs"] == 2 and metrics["steps"] == 2 * STEPS_PER_EPOCH, metrics
    assert Path(metrics["last_ckpt"]).is_file() and Path(metrics["best_ckpt"]).is_file()
    assert metrics["best_epoch"] in (0, 1) and 0.0 < metrics["test/acc"] <= 1.0
    assert metrics["diagnosis"]  # the epochs' history came back too (curves.png)
    assert (run_dir / "curves.png").is_file()
    header = (run_dir / "csv/metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "val/acc", "test/acc"} <= set(header)
    no_process_left(tmp_path)
