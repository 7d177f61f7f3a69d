"""ctrl-C, SIGTERM and SIGUSR1 stop a run cleanly: a checkpoint, metrics.json with status interrupted, exit code
128 + signal, and `ckpt_path=<that checkpoint>` continues it to exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from trainlab.data.loader import TensorLoader

from .conftest import BIN, QUIET

RUN = [
    "seed=3",
    "trainer.deterministic=true",
    "trainer.max_epochs=12",
    "callbacks.early_stopping=null",
    "logger=none",
    "test=false",
    "model.width=512",
    "data.batch_size=16",
    "extras.curves=false",
    *QUIET,
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_the_loader_resumes_in_the_middle_of_an_epoch():
    x = torch.arange(100)
    loader = TensorLoader(x, batch_size=10, shuffle=True, seed=1)
    loader.set_epoch(3)
    it = iter(loader)
    seen = [next(it)[0] for _ in range(4)]
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches": 4, "seed": 1}
    rest = [b[0] for b in it]
    fresh = TensorLoader(x, batch_size=10, shuffle=True, seed=1)
    fresh.load_state_dict(state)
    fresh.set_epoch(3)  # Lightning sets the (same) epoch again: the position is kept
    resumed = [b[0] for b in fresh]
    assert len(resumed) == 6 and all(torch.equal(a, b) for a, b in zip(resumed, rest, strict=True))
    assert torch.equal(torch.cat(seen + resumed).sort().values, x)  # the epoch still covers every sample once
    assert len(list(fresh)) == 10  # the next pass is a whole epoch again
    fresh.load_state_dict(state)
    fresh.set_epoch(4)  # a position saved in epoch 3 does not apply to epoch 4
    assert len(list(fresh)) == 10


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "trainlab-train"), *RUN, f"hydra.run.dir={run_dir}", *extra],
        cwd=run_dir.parent,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epoch(run_dir: Path, epoch: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] >= epoch:
                return
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} was not reached")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1], ids=["SIGTERM", "SIGINT", "SIGUSR1"])
def test_a_signal_saves_a_checkpoint_writes_the_status_and_exits_cleanly(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_epoch(run_dir, 2, proc)
    time.sleep(0.15)  # somewhere in the middle of an epoch
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err[-3000:]
    assert "Traceback" not in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ckpt = run_dir / "checkpoints" / "interrupted.ckpt"
    assert metrics["status"] == "interrupted" and metrics["resume"] == f"ckpt_path={ckpt}"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["global_step"] == metrics["steps"] > 0
    assert f"continue with: ckpt_path={ckpt}" in out  # the log line (Hydra logs to stdout)


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_by_sigterm_resumes_to_the_uninterrupted_result(tmp_path):
    steps_per_epoch = 1257 // 16 + 1  # digits' 1257 training images in batches of 16
    for attempt in range(3):  # a signal that lands during validation stops at an epoch's end: try again
        run_dir = tmp_path / f"stopped_{attempt}"
        proc = start(run_dir)
        wait_for_epoch(run_dir, 3, proc)
        time.sleep(0.12)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 128 + signal.SIGTERM
        stopped_at = json.loads((run_dir / "metrics.json").read_text())["steps"]
        if stopped_at % steps_per_epoch:
            break
    assert stopped_at % steps_per_epoch != 0  # it was stopped in the middle of an epoch
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    for target, extra in ((resumed, [f"ckpt_path={run_dir / 'checkpoints' / 'interrupted.ckpt'}"]), (straight, [])):
        proc = start(target, *extra)
        proc.communicate(timeout=300)
        assert proc.returncode == 0
    a = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["global_step"] == 12 * steps_per_epoch
    assert a["global_step"] == b["global_step"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in b["state_dict"])  # bit for bit
