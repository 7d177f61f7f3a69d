"""Checkpoints are written atomically: a save cut off half-way leaves the previous checkpoint whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from trainlab import build
from trainlab.callbacks import AtomicCheckpointIO
from trainlab.callbacks import checkpoint as checkpoint_module
from trainlab.train import train


def test_a_save_that_fails_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"version": 1, "w": torch.arange(10.0)}, path)

    def half_then_die(obj, f):
        f.write(b"\x80\x02 half a pickle")
        raise KeyboardInterrupt  # the process is stopped in the middle of writing

    monkeypatch.setattr(checkpoint_module.torch, "save", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"version": 2, "w": torch.zeros(10)}, path)
    monkeypatch.undo()
    loaded = torch.load(path, weights_only=True)
    assert loaded["version"] == 1 and torch.equal(loaded["w"], torch.arange(10.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left behind


def test_ctrl_c_during_a_save_finishes_the_file_then_interrupts(tmp_path, monkeypatch):
    """A ctrl-C that arrives while torch.save writes would break its zip writer with an unrelated RuntimeError;
    it is held back until the checkpoint is in place, then raised as the KeyboardInterrupt it is."""
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    real_save = torch.save

    def save_and_get_interrupted(obj, f):
        os.kill(os.getpid(), signal.SIGINT)  # delivered in the middle of the save
        real_save(obj, f)

    monkeypatch.setattr(checkpoint_module.torch, "save", save_and_get_interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"version": 3, "w": torch.arange(5.0)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["version"] == 3  # the file was finished before the interrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ctrl-C works as before


CHILD = """
import sys, torch
from trainlab.callbacks import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"version": 0, "w": torch.zeros(10)}, path)
print("ready", flush=True)
big = torch.randn(16_000_000)  # 64 MB: each save takes a while
for version in range(1, 1000):
    io.save_checkpoint({"version": version, "w": big}, path)
"""


@pytest.mark.slow
def test_kill_9_during_saves_never_leaves_a_truncated_checkpoint(tmp_path):
    path, tmp = tmp_path / "last.ckpt", tmp_path / "last.ckpt.tmp"
    cut_mid_write = 0
    for delay in (0.05, 0.2, 0.45):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        cut_mid_write += tmp.exists()  # killed while writing the temporary file
        tmp.unlink(missing_ok=True)
        loaded = torch.load(path, weights_only=True)  # whole: version 0 or a finished later one
        assert loaded["version"] >= 0 and loaded["w"].numel() in (10, 16_000_000)
    assert cut_mid_write >= 1  # the kills did land in the middle of saves


def test_training_runs_write_their_checkpoints_atomically(make_cfg, tmp_path):
    cfg = make_cfg("trainer.max_epochs=2", "test=false")
    assert [type(p) for p in build.checkpoint_plugins(cfg)] == [AtomicCheckpointIO]
    metrics = train(cfg)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "last.ckpt" in files and not [f for f in files if f.endswith(".tmp")]
    assert torch.load(metrics["last_ckpt"], weights_only=True)["epoch"] == 1
