"""A run resumed with more epochs continues its cosine schedule to the new horizon (it used to keep the old one and
train at a learning rate of 0); a resume with the same horizon is unchanged and exact; one-cycle refuses.

The re-planned schedule (see ``Classifier._replan_cosine``): at the resume epoch e, a cosine from lr_e down to
eta_min at the new max_epochs M, lr(t) = eta_min + (lr_e - eta_min) (1 + cos(pi (t - e) / (M - e))) / 2, where lr_e
is the learning rate the old schedule had reached, or the base learning rate if the old schedule had ended."""

from __future__ import annotations

import csv
import logging
import math
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from trainlab.classifier import Classifier
from trainlab.errors import RunInterrupted
from trainlab.train import train

from .conftest import BIN, read_metrics, run_cli

BASE = 1e-3  # optimizer=adam's lr
COMMON = ["seed=3", "trainer.deterministic=true", "test=false", "logger=csv", "extras.curves=false"]


def cosine(lr_e: float, e: int, end: int, t: int, eta_min: float = 0.0) -> float:
    return eta_min + (lr_e - eta_min) * (1 + math.cos(math.pi * (t - e) / (end - e))) / 2


def column(run_dir: Path, key: str) -> list[float]:
    """The values of one metric in <run>/csv/metrics.csv, in the order logged (one per epoch)."""
    with (Path(run_dir) / "csv" / "metrics.csv").open() as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def test_extending_a_finished_cosine_restarts_it_to_the_new_horizon(make_cfg, tmp_path, caplog):
    first = train(make_cfg(*COMMON, "trainer.max_epochs=1", subdir="first"))
    with caplog.at_level(logging.INFO, logger="trainlab"):
        train(make_cfg(*COMMON, "trainer.max_epochs=3", f"ckpt_path={first['last_ckpt']}", subdir="resumed"))
    # epoch 0 ended the 1-epoch schedule (lr 0 next); the remaining 2 epochs: a cosine from the base lr to 0 at 3
    assert column(tmp_path / "first", "lr-Adam") == [BASE]
    lrs = column(tmp_path / "resumed", "lr-Adam")
    assert lrs == pytest.approx([cosine(BASE, 1, 3, 1), cosine(BASE, 1, 3, 2)], rel=1e-9) == [BASE, BASE / 2]
    assert "resumed at epoch 1 of a schedule planned for 1 epochs; re-planned the remaining cosine to 3 epochs" in (
        caplog.text
    )
    loss = column(tmp_path / "first", "val/loss") + column(tmp_path / "resumed", "val/loss")
    assert len(loss) == len(set(loss)) == 3  # the weights move in every epoch (at lr 0 they did not)


def test_extending_a_cosine_in_progress_continues_from_its_learning_rate(make_cfg, tmp_path):
    # 2 epochs of a cosine planned for 4 (lr at epoch 2: BASE / 2), then resumed to 6 epochs (T_max follows)
    first = train(make_cfg(*COMMON, "trainer.max_epochs=2", "scheduler.T_max=4", subdir="first"))
    train(make_cfg(*COMMON, "trainer.max_epochs=6", f"ckpt_path={first['last_ckpt']}", subdir="resumed"))
    lr_e = cosine(BASE, 0, 4, 2)
    assert column(tmp_path / "first", "lr-Adam") == pytest.approx([BASE, cosine(BASE, 0, 4, 1)], rel=1e-9)
    assert column(tmp_path / "resumed", "lr-Adam") == pytest.approx([cosine(lr_e, 2, 6, t) for t in range(2, 6)])


def test_a_replanned_run_stopped_and_resumed_with_its_horizon_is_exact(make_cfg, tmp_path, caplog, monkeypatch):
    first = train(make_cfg(*COMMON, "trainer.max_epochs=1", subdir="first"))
    steps = first["steps"]  # one epoch
    extended = train(make_cfg(*COMMON, "trainer.max_epochs=3", f"ckpt_path={first['last_ckpt']}", subdir="extended"))

    def sigterm_mid_epoch_1(self, outputs, batch, batch_idx):  # the same extension, stopped in its first new epoch
        if self.global_step == steps + steps // 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Classifier, "on_train_batch_end", sigterm_mid_epoch_1, raising=False)
    with pytest.raises(RunInterrupted) as stopped:
        train(make_cfg(*COMMON, "trainer.max_epochs=3", f"ckpt_path={first['last_ckpt']}", subdir="stopped"))
    monkeypatch.undo()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="trainlab"):
        again = train(
            make_cfg(*COMMON, "trainer.max_epochs=3", f"ckpt_path={stopped.value.checkpoint}", subdir="again")
        )
    assert "re-planned" not in caplog.text  # its horizon is the checkpoint's: nothing to re-plan
    assert column(tmp_path / "again", "lr-Adam") == column(tmp_path / "extended", "lr-Adam")[1:]
    a = torch.load(extended["last_ckpt"], weights_only=True)
    b = torch.load(again["last_ckpt"], weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * steps
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])  # bit for bit


@pytest.mark.slow
def test_the_readme_resume_with_more_epochs_trains_at_the_replanned_learning_rate(tmp_path):
    """Exactly the commands of docs/operations.md ("Reproducibility"), with every default (progress bar, config
    tree, callbacks, csv logger)."""
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    run_cli(["trainlab-train", "trainer.max_epochs=1", f"hydra.run.dir={first}"], cwd=tmp_path)
    ckpt = first / "checkpoints" / "last.ckpt"
    proc = run_cli(
        ["trainlab-train", "trainer.max_epochs=3", f"ckpt_path={ckpt}", f"hydra.run.dir={resumed}"], cwd=tmp_path
    )
    line = "resumed at epoch 1 of a schedule planned for 1 epochs; re-planned the remaining cosine to 3 epochs"
    assert line in proc.stdout and line in (resumed / "train.log").read_text()
    assert column(resumed, "lr-Adam") == pytest.approx([BASE, BASE / 2], rel=1e-9)  # was [0.0, 0.001]
    loss = column(first, "val/loss") + column(resumed, "val/loss")
    assert len(loss) == len(set(loss)) == 3  # the weights move in every epoch (at lr 0 they did not)
    assert column(resumed, "val/acc") != column(first, "val/acc") * 2
    metrics = read_metrics(resumed)
    assert metrics["status"] == "completed" and metrics["epochs"] == 3


@pytest.mark.slow
def test_extending_a_one_cycle_run_is_refused_in_one_line(tmp_path):
    first, resumed = tmp_path / "first", tmp_path / "resumed"
    run_cli(["trainlab-train", "scheduler=onecycle", "trainer.max_epochs=1", f"hydra.run.dir={first}"], cwd=tmp_path)
    ckpt = first / "checkpoints" / "last.ckpt"
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), "scheduler=onecycle", "trainer.max_epochs=2", f"ckpt_path={ckpt}"]
        + [f"hydra.run.dir={resumed}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "scheduler=onecycle cannot extend a run" in proc.stderr + proc.stdout
    assert "trainer.max_epochs=1" in proc.stderr + proc.stdout


def test_a_one_cycle_checkpoint_without_its_horizon_is_refused_when_training_starts(make_cfg, tmp_path):
    from trainlab.validate import ConfigError

    first = train(make_cfg(*COMMON, "scheduler=onecycle", "trainer.max_epochs=1", subdir="first"))
    ckpt = torch.load(first["last_ckpt"], weights_only=True)
    del ckpt["trainlab"]["max_epochs"]  # as written before it was stored
    torch.save(ckpt, tmp_path / "old.ckpt")
    resume = f"ckpt_path={tmp_path / 'old.ckpt'}"
    same = train(make_cfg(*COMMON, "scheduler=onecycle", "trainer.max_epochs=1", resume, subdir="same"))
    assert same["steps"] == first["steps"]  # the same horizon resumes (here: nothing left to do)
    with pytest.raises(ConfigError, match="scheduler=onecycle cannot extend a run"):
        train(make_cfg(*COMMON, "scheduler=onecycle", "trainer.max_epochs=2", resume, subdir="longer"))
