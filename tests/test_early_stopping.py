"""Early stopping on a scripted metric sequence, the stop reason in metrics.json, and the divergence guard."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainlab.classifier import DivergenceError
from trainlab.train import train


def test_early_stopping_stops_after_patience_and_tests_the_best_epoch(make_cfg, tmp_path, scripted_val_acc):
    metrics = train(make_cfg("trainer.max_epochs=8", "callbacks.early_stopping.patience=3"))
    # epochs 2, 3, 4 do not beat epoch 1's 0.70: the third of them ends training after 5 epochs
    assert metrics["epochs"] == 5 and metrics["stop_reason"] == "early_stopping"
    assert metrics["best_epoch"] == 1 and metrics["best_ckpt"].endswith("epoch_001.ckpt")
    assert float(metrics["val/acc_best"]) == pytest.approx(0.70)
    best = torch.load(metrics["best_ckpt"], weights_only=True)
    assert best["epoch"] == 1
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "completed" and saved["best_epoch"] == 1


def test_patience_counts_epochs_and_min_delta_counts_as_no_improvement(make_cfg, scripted_val_acc):
    # with min_delta 0.1, 0.70 -> 0.69 and -> 0.90 at epoch 6 ... only epoch 6 (+0.2) would count, too late
    metrics = train(
        make_cfg(
            "trainer.max_epochs=8", "callbacks.early_stopping.patience=2", "callbacks.early_stopping.min_delta=0.1"
        )
    )
    assert metrics["epochs"] == 4 and metrics["stop_reason"] == "early_stopping"


def test_without_early_stopping_the_run_ends_at_max_epochs(make_cfg, scripted_val_acc):
    metrics = train(make_cfg("trainer.max_epochs=8", "callbacks.early_stopping=null"))
    assert metrics["epochs"] == 8 and metrics["stop_reason"] == "max_epochs" and metrics["best_epoch"] == 7


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(make_cfg, tmp_path):
    # epoch 0 trains at lr 0.05; the step schedule then multiplies the learning rate by 10^4: the loss explodes
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr=0.05",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e4",
        "trainer.max_epochs=5",
    )
    with pytest.raises(DivergenceError, match=r"NaN/inf at step (2\d|3\d) \(epoch 1\).*optimizer.lr=0.05 now"):
        train(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "diverged" and saved["stop_reason"] == "divergence"
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0  # written before the divergence, never overwritten by it
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert math.isfinite(
        float(last["callbacks"][next(k for k in last["callbacks"] if "ModelCheckpoint" in k)]["best_model_score"])
    )


def test_last_checkpoint_is_the_latest_epoch_not_the_latest_improvement(make_cfg, tmp_path, scripted_val_acc):
    """val/acc peaks at epoch 1 (SCRIPT) and the run goes on to epoch 4: last.ckpt holds epoch 4, best epoch 1.
    (Lightning alone rewrites last.ckpt only when the metric improves, so a resume would redo epochs 2-4.)"""
    metrics = train(make_cfg("trainer.max_epochs=5", "callbacks.early_stopping=null", "test=false"))
    last = torch.load(metrics["last_ckpt"], weights_only=True)
    assert last["epoch"] == 4 and last["global_step"] == metrics["steps"]
    assert metrics["best_epoch"] == 1
