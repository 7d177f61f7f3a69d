"""The recipe's first step: the initial loss is about ln(C), as a command and as a check at the start of every run."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from trainlab.errors import RecipeCheckFailed
from trainlab.train import train


def test_initial_loss_of_a_fresh_model_is_about_ln_c(make_cfg, tmp_path):
    result = train(make_cfg("recipe=initial_loss"))
    assert result["ok"] and result["expected"] == pytest.approx(math.log(10))
    assert abs(result["loss"] - math.log(10)) < 0.1
    saved = json.loads((tmp_path / "initial_loss.json").read_text())
    assert saved["loss"] == pytest.approx(result["loss"]) and saved["batches"] == 5
    assert not (tmp_path / "checkpoints").exists()  # the check trains nothing


@pytest.mark.parametrize("classes", [10, 100])
def test_initial_loss_is_about_ln_c_for_10_and_100_classes(classes):
    """An untrained classifier over C classes predicts about 1/C for each: loss ln(C), whatever the labels."""
    from trainlab.classifier import Classifier
    from trainlab.models.mlp import MLP
    from trainlab.recipe import initial_loss

    torch.manual_seed(0)
    net = MLP(input_shape=(64,), num_classes=classes, depth=2, width=256)
    module = Classifier(net=net, num_classes=classes, optimizer=torch.optim.SGD)
    x, y = torch.rand(5 * 64, 64), torch.randint(0, classes, (5 * 64,))

    class Data:
        def train_dataloader(self):
            return list(zip(x.split(64), y.split(64), strict=True))

    result = initial_loss(module, Data(), batches=5)
    assert result["ok"] and result["expected"] == pytest.approx(math.log(classes))
    assert abs(result["loss"] - math.log(classes)) < 0.05 * math.log(classes)


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


# ---- step 2: overfit a small sample ----
def test_overfit_reaches_100_percent_on_a_small_digits_sample(make_cfg, tmp_path):
    result = train(make_cfg("recipe=overfit", "regularizer=[dropout,l2]", "augment=[translate]"))
    saved = json.loads((tmp_path / "overfit.json").read_text())
    assert saved["ok"] is True and saved["train_acc"] == 1.0 and saved["samples"] == 128
    assert 0 < saved["epochs"] < 300 and saved["epochs"] == result["epochs"]
    assert len(saved["losses"]) == saved["epochs"] + 1 and saved["losses"][-1] < saved["losses"][0] / 5
    assert saved["train_accs"][-1] == 1.0 and max(saved["train_accs"][:-1]) < 1.0  # it stopped at the first 100%


def test_steps_1_and_2_turn_regularization_off_and_step_3_sets_small_weight_decay(make_cfg):
    from trainlab.build import instantiate

    def recipe_config(cfg):  # what the step measures: the step object's own config
        return instantiate(cfg.recipe).config(cfg)

    extra = ["regularizer=[dropout,l2]", "augment=[hflip]", "optimizer.weight_decay=0.1", "ensemble=ema"]
    for step in ("initial_loss", "overfit"):
        cfg = recipe_config(make_cfg(f"recipe={step}", *extra))
        assert not cfg.regularizer and not cfg.augment and cfg.optimizer.weight_decay == 0.0 and cfg.ensemble is None
    cfg = recipe_config(make_cfg("recipe=lr_find", *extra))
    assert set(cfg.regularizer) == {"dropout", "l2"} and cfg.optimizer.weight_decay == 1e-4 and cfg.ensemble is None


def test_overfit_at_a_tiny_learning_rate_fails_saying_the_lr_is_too_low(make_cfg, tmp_path):
    with pytest.raises(RecipeCheckFailed, match="loss is flat .* learning rate is too low"):
        train(make_cfg("recipe=overfit", "optimizer.lr=1e-8", "recipe.max_epochs=20"))
    saved = json.loads((tmp_path / "overfit.json").read_text())
    assert saved["ok"] is False and saved["epochs"] == 20 and saved["train_acc"] < 0.5
    assert abs(saved["loss_end"] - saved["loss_start"]) < 0.01


def test_overfit_at_a_huge_learning_rate_fails_saying_the_lr_is_too_high(make_cfg, tmp_path):
    with pytest.raises(RecipeCheckFailed, match="loss exploded .* learning rate is too high"):
        train(make_cfg("recipe=overfit", "optimizer=sgd", "optimizer.lr=50", "recipe.max_epochs=20"))
    saved = json.loads((tmp_path / "overfit.json").read_text())
    assert saved["ok"] is False and not (saved["loss_end"] < 1.5 * saved["loss_start"])


# ---- step 3: learning-rate range test ----
def test_lr_find_suggests_a_rate_within_a_decade_of_a_known_good_one(make_cfg, tmp_path):
    result = train(make_cfg("recipe=lr_find"))
    saved = json.loads((tmp_path / "lr_find.json").read_text())
    assert saved["suggested_lr"] == pytest.approx(result["suggested_lr"])
    # Adam at 1e-3 trains the digits MLP to ~96% (the default run); the suggestion lands within a decade of it
    assert 1e-4 <= saved["suggested_lr"] <= 1e-2
    lrs = saved["lrs"]
    # an exponential sweep upwards from min_lr: a constant ratio (1e6)^(1/100) per step (after Lightning's first)
    ratios = [b / a for a, b in zip(lrs[1:-1], lrs[2:], strict=True)]
    assert lrs[0] == pytest.approx(1e-6) and ratios == pytest.approx([1e6 ** (1 / 100)] * len(ratios), rel=1e-6)
    assert len(saved["losses"]) == len(lrs) <= 100 and saved["weight_decay"] == 1e-4
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".lr_find_*.ckpt"))  # Lightning's temporary checkpoint is removed


def test_lr_find_leaves_the_model_untrained(make_cfg, tmp_path):
    """The range test restores the initial weights: a following run starts from the same initial loss."""
    from trainlab import build

    cfg = make_cfg("recipe=lr_find", "recipe.num_training=30")
    dm = build.build_datamodule(cfg)
    model = build.build_module(cfg)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    import pytorch_lightning as pl

    from trainlab.recipe import lr_find

    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(tmp_path),
        max_epochs=10,
    )
    result, _ = lr_find(trainer, model, dm, num_training=30)
    assert result["steps"] == 30
    after = model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_recipe_settings_out_of_range_are_refused_naming_the_setting():
    import re

    from trainlab.recipe import InitialLoss, InitialLossCheck, LrFind, Overfit

    for make, message in [
        (lambda: InitialLoss(batches=0), "batches=0: batches of the initial-loss check must be an integer >= 1"),
        (lambda: InitialLossCheck(batches=0), "batches=0: batches of the initial-loss check must be an integer >= 1"),
        (lambda: Overfit(samples=0), "samples=0: images of the overfitting sample must be an integer >= 1"),
        (lambda: Overfit(max_epochs=0), "max_epochs=0: epochs of the overfitting check must be an integer >= 1"),
        (
            lambda: LrFind(num_training=1),
            "num_training=1: steps of the learning-rate range test must be an integer >= 2",
        ),
        (lambda: LrFind(min_lr=0), "min_lr=0: lowest learning rate of the range test must be a number > 0"),
        (lambda: LrFind(max_lr=-1), "max_lr=-1: highest learning rate of the range test must be a number > 0"),
        (
            lambda: LrFind(mode="log"),
            "mode='log': how the range test's learning rate grows must be one of exponential, linear",
        ),
    ]:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            make()
