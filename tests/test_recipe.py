"""The recipe's first step: the initial loss is about ln(C), as a command and as a check at the start of every run."""

from __future__ import annotations

import csv
import json
import math

import pytest

from trainlab.train import RecipeCheckFailed, train


def test_initial_loss_of_a_fresh_model_is_about_ln_c(make_cfg, tmp_path):
    result = train(make_cfg("recipe=initial_loss"))
    assert result["ok"] and result["expected"] == pytest.approx(math.log(10))
    assert abs(result["loss"] - math.log(10)) < 0.1
    saved = json.loads((tmp_path / "initial_loss.json").read_text())
    assert saved["loss"] == pytest.approx(result["loss"]) and saved["batches"] == 5
    assert not (tmp_path / "checkpoints").exists()  # the check trains nothing


def test_too_large_initial_weights_fail_the_check_with_advice(make_cfg, tmp_path):
    with pytest.raises(RecipeCheckFailed, match="too high: the initial weights are too large"):
        train(make_cfg("recipe=initial_loss", "init=small_random", "init.std=1.0"))
    saved = json.loads((tmp_path / "initial_loss.json").read_text())
    assert saved["ok"] is False and saved["loss"] > 10 * math.log(10)


def test_every_training_run_logs_its_initial_loss(make_cfg, tmp_path):
    checked = train(make_cfg("recipe=initial_loss", subdir="check"))
    train(make_cfg("trainer.max_epochs=1", "test=false", subdir="run"))
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        (row,) = [r for r in csv.DictReader(f) if r.get("train/initial_loss")]
    # the same seed builds the same untrained network: the callback measured what the command measured
    assert float(row["train/initial_loss"]) == pytest.approx(checked["loss"], rel=1e-5)
