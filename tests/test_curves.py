"""Learning curves: curves.png and the lecture's one-line diagnosis in metrics.json."""

from __future__ import annotations

import json

import torch

from trainlab.curves import diagnose
from trainlab.train import train


def history(train_acc, val_acc):
    return [{"epoch": i, "train/acc": t, "val/acc": v} for i, (t, v) in enumerate(zip(train_acc, val_acc, strict=True))]


def test_rising_validation_means_train_longer():
    text = diagnose(history([0.5, 0.6, 0.7, 0.8, 0.85], [0.5, 0.6, 0.65, 0.7, 0.75]))
    assert text.startswith("still improving") and "0.6000 to 0.7500" in text


def test_a_large_gap_with_flat_validation_is_overfitting():
    text = diagnose(history([0.9, 0.97, 0.99, 1.0, 1.0, 1.0], [0.85, 0.88, 0.88, 0.87, 0.88, 0.875]))
    assert text.startswith("overfitting") and "gap 0.1250" in text


def test_no_gap_and_an_unfitted_training_set_is_underfitting():
    text = diagnose(history([0.6, 0.7, 0.72, 0.72, 0.72, 0.72], [0.62, 0.7, 0.72, 0.72, 0.72, 0.721]))
    assert text.startswith("underfitting")


def test_no_gap_fitted_and_flat_is_converged():
    assert diagnose(history([0.9, 0.99, 1.0, 1.0, 1.0, 1.0], [0.9, 0.97, 0.97, 0.97, 0.97, 0.97])).startswith(
        "converged"
    )
    assert diagnose(history([0.5], [0.5])).startswith("too short")


def test_every_run_saves_curves_and_a_diagnosis(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=4", "logger=none"))
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["diagnosis"] == metrics["diagnosis"]
    assert saved["diagnosis"].split(":")[0] in {"still improving", "overfitting", "underfitting", "converged"}


def test_the_history_survives_a_resume(make_cfg):
    common = ["seed=7", "trainer.deterministic=true", "logger=none", "scheduler=none"]
    straight = train(make_cfg(*common, "trainer.max_epochs=4", subdir="s"))
    first = train(make_cfg(*common, "trainer.max_epochs=2", subdir="f"))
    resumed = train(make_cfg(*common, "trainer.max_epochs=4", f"ckpt_path={first['last_ckpt']}", subdir="r"))
    assert resumed["diagnosis"] == straight["diagnosis"]
    saved = [torch.load(m["last_ckpt"], weights_only=True)["trainlab"]["history"] for m in (straight, resumed)]
    assert [h["epoch"] for h in saved[1]] == [0, 1, 2, 3] and saved[0] == saved[1]
