"""Kill -9 at random points of a run, five times, resuming each time from the last checkpoint: the final weights
and metrics equal those of the same run left alone (CPU, trainer.deterministic=true)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from .conftest import BIN, QUIET

EPOCHS = 30
RUN = [
    "seed=3",
    "trainer.deterministic=true",
    f"trainer.max_epochs={EPOCHS}",
    "callbacks.early_stopping=null",
    "logger=none",
    "test=false",
    "model.width=512",
    "data.batch_size=16",  # ~80 steps per epoch: an epoch takes long enough to be killed in the middle
    "extras.curves=false",
    *QUIET,
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def last_epoch(run_dir: Path) -> int:
    try:
        return int(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet
        return -1


@pytest.mark.slow
def test_five_kill_9s_and_resumes_end_where_an_uninterrupted_run_ends(tmp_path):
    rng = random.Random(0)
    resume_from, kills = None, 0
    for i in range(5):
        run_dir = tmp_path / f"killed_{i}"
        args = [str(BIN / "trainlab-train"), *RUN, f"hydra.run.dir={run_dir}"]
        if resume_from is not None:
            args.append(f"ckpt_path={resume_from}")
        proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = 4 * (i + 1)  # kill somewhere after this epoch's checkpoint: at a random point of the next ones
        deadline = time.time() + 180
        while last_epoch(run_dir) < target and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        assert proc.poll() is None, f"run {i} ended before it was killed (last epoch {last_epoch(run_dir)})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        resume_from = run_dir / "checkpoints" / "last.ckpt"
        assert last_epoch(run_dir) >= target  # the last checkpoint is whole after the kill
    final = tmp_path / "final"
    subprocess.run(
        [str(BIN / "trainlab-train"), *RUN, f"hydra.run.dir={final}", f"ckpt_path={resume_from}"],
        cwd=tmp_path,
        env=ENV,
        check=True,
        capture_output=True,
    )
    straight = tmp_path / "straight"
    subprocess.run(
        [str(BIN / "trainlab-train"), *RUN, f"hydra.run.dir={straight}"],
        cwd=tmp_path,
        env=ENV,
        check=True,
        capture_output=True,
    )
    assert kills == 5
    # a resumed run does not check (or warn about) an initial loss: its weights are trained
    assert "initial loss" not in (final / "train.log").read_text()
    a = torch.load(final / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == EPOCHS - 1 and a["global_step"] == b["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])  # bit for bit
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (final, straight))
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best"):
        assert ma[key] == mb[key], key
