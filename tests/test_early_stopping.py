"""Early stopping on a scripted metric sequence, the stop reason in metrics.json, and the divergence guard."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch

from trainlab.callbacks.divergence import DivergenceGuard
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


def test_the_diverged_weights_are_never_validated_nor_saved_when_checkpoints_follow_validation(make_cfg, tmp_path):
    """With validation every second epoch, Lightning saves the checkpoints after validation, before the epoch's
    end: the guard stops the run before that validation (epoch 1, where the loss explodes)."""
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr=0.05",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e4",
        "trainer.max_epochs=5",
        "trainer.check_val_every_n_epoch=2",
    )
    with pytest.raises(DivergenceError, match=r"NaN/inf at step (2\d|3\d) \(epoch 1\)"):
        train(cfg)
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path
    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    assert not [r for r in rows if r.get("val/loss")]  # no validation ran after the sanity check


def test_the_guard_names_the_first_bad_step_and_reads_it_only_at_its_checks():
    guard = DivergenceGuard()
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    trainer = SimpleNamespace(
        global_step=0, current_epoch=3, sanity_checking=False, state=SimpleNamespace(fn="fit"), optimizers=[optimizer]
    )
    guard.on_train_start(trainer, None)
    for step, loss in enumerate([1.0, 2.0, float("nan"), float("inf"), 1.0]):
        trainer.global_step = step
        guard.on_before_backward(trainer, None, torch.tensor(loss))
    assert guard.first_bad_step.device.type == "cpu" and guard.first_bad_step.ndim == 0  # a tensor, not read yet
    trainer.sanity_checking = True
    guard.on_validation_epoch_start(trainer, None)  # the sanity check validates the initial weights: no check
    trainer.sanity_checking = False
    message = r"NaN/inf at step 2 \(epoch 3\).*optimizer.lr=0.05 now; e.g. optimizer.lr=0.005"
    with pytest.raises(DivergenceError, match=message):
        guard.on_validation_epoch_start(trainer, None)
    with pytest.raises(DivergenceError, match=message):
        guard.on_train_epoch_end(trainer, None)
    guard.on_train_start(trainer, None)  # a new fit starts with a clean record
    guard.on_train_epoch_end(trainer, None)


def test_a_run_without_the_configs_callbacks_still_has_the_guard_and_the_curves(make_cfg, tmp_path):
    metrics = train(make_cfg("callbacks=none", "trainer.max_epochs=2", "test=false"))
    assert metrics["epochs"] == 2 and metrics["diagnosis"] and (tmp_path / "curves.png").is_file()  # the history
    cfg = make_cfg("callbacks=none", "optimizer=sgd", "optimizer.lr=1e30", "trainer.max_epochs=2", subdir="diverging")
    with pytest.raises(DivergenceError, match=r"NaN/inf at step \d+ \(epoch 0\)"):
        train(cfg)


def test_last_checkpoint_is_the_latest_epoch_not_the_latest_improvement(make_cfg, tmp_path, scripted_val_acc):
    """val/acc peaks at epoch 1 (SCRIPT) and the run goes on to epoch 4: last.ckpt holds epoch 4, best epoch 1.
    (Lightning alone rewrites last.ckpt only when the metric improves, so a resume would redo epochs 2-4.)"""
    metrics = train(make_cfg("trainer.max_epochs=5", "callbacks.early_stopping=null", "test=false"))
    last = torch.load(metrics["last_ckpt"], weights_only=True)
    assert last["epoch"] == 4 and last["global_step"] == metrics["steps"]
    assert metrics["best_epoch"] == 1
