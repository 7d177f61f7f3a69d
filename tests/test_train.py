"""Training and evaluation in-process (Hydra compose API): metrics, checkpoints, eval = train, exact resume."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from trainlab.eval import evaluate
from trainlab.train import main, train

FAST = ["trainer.max_epochs=3", "logger=csv"]
METRIC_KEYS = ["train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"]


def epoch_rows(run_dir: Path) -> list[dict]:
    """The per-epoch rows of the CSV logger that carry validation metrics."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("val/acc")]


def test_a_run_writes_metrics_checkpoints_and_config(make_cfg, tmp_path):
    metrics = train(make_cfg(*FAST))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in [*METRIC_KEYS, "best_ckpt", "last_ckpt", "epochs", "steps", "train_seconds"]:
        assert key in saved, key
    assert saved["epochs"] == 3
    assert saved["steps"] == 3 * math.ceil(1257 / 64)  # 1,257 training images, batches of 64
    assert 0.0 < saved["train_seconds"] < 600
    assert 0.0 <= saved["test/acc"] <= 1.0 and saved["test/loss"] > 0
    assert Path(saved["best_ckpt"]).is_file() and Path(saved["last_ckpt"]).name == "last.ckpt"
    assert (tmp_path / "config.yaml").read_text().count("_target_: trainlab.models.mlp.MLP") == 1
    assert math.isclose(float(metrics["test/acc"]), saved["test/acc"])
    # val/acc_best is the maximum of the per-epoch val/acc the logger saw, and the best checkpoint is that epoch's
    rows = epoch_rows(tmp_path)
    assert len(rows) == 3
    accs = [float(r["val/acc"]) for r in rows]
    assert math.isclose(saved["val/acc_best"], max(accs), rel_tol=1e-6)
    assert math.isclose(float(rows[-1]["val/acc_best"]), max(accs), rel_tol=1e-6)
    best_epoch = accs.index(max(accs))
    assert Path(saved["best_ckpt"]).name == f"epoch_{best_epoch:03d}.ckpt"


def test_training_learns_the_digits(make_cfg):
    """Three epochs of the default recipe already classify most digits; the loss falls from ~ln(10)."""
    metrics = train(make_cfg(*FAST))
    assert float(metrics["test/acc"]) > 0.85
    assert float(metrics["train/loss"]) < 0.6 * math.log(10)


def test_main_returns_the_optimized_metric(make_cfg, tmp_path):
    cfg = make_cfg(*FAST, "optimized_metric=val/acc")
    value = main.__wrapped__(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert isinstance(value, float) and value == pytest.approx(saved["val/acc"])


@pytest.mark.parametrize(
    "scheduler, lrs",
    [
        # StepLR(step_size=1, gamma=0.5) after each epoch: 0.1, 0.05, 0.025
        ("step scheduler.step_size=1 scheduler.gamma=0.5", [0.1, 0.05, 0.025]),
        # cosine over 3 epochs from 0.1 to 0: 0.1, 0.075, 0.025
        ("cosine", [0.1, 0.075, 0.025]),
        ("none", [0.1, 0.1, 0.1]),
    ],
)
def test_the_learning_rate_follows_the_schedule(make_cfg, tmp_path, scheduler, lrs):
    name, *extra = scheduler.split()
    train(make_cfg(*FAST, "optimizer=sgd", "optimizer.lr=0.1", f"scheduler={name}", *extra))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        logged = [float(r["lr-SGD"]) for r in csv.DictReader(f) if r.get("lr-SGD")]
    assert logged == pytest.approx(lrs, abs=1e-9)


def test_onecycle_steps_every_batch_from_warmup_to_near_zero(make_cfg, tmp_path):
    cfg = make_cfg(
        "trainer.max_epochs=2",
        "optimizer=sgd",
        "scheduler=onecycle",
        "scheduler.max_lr=0.2",
        "callbacks.lr_monitor.logging_interval=step",
        "trainer.log_every_n_steps=1",
        "test=false",
    )
    metrics = train(cfg)
    assert metrics["steps"] == 2 * 20
    with open(tmp_path / "csv" / "metrics.csv") as f:
        lrs = [float(r["lr-SGD"]) for r in csv.DictReader(f) if r.get("lr-SGD")]
    # the learning rate of each of the 40 steps: starts at max_lr/div_factor, peaks at max_lr after
    # pct_start*40-1 = 11 steps, ends at max_lr/(div_factor*final_div_factor)
    assert len(lrs) == 40
    assert lrs[0] == pytest.approx(0.2 / 25)
    assert max(lrs) == pytest.approx(0.2) and lrs.index(max(lrs)) == 11
    assert lrs[-1] == pytest.approx(0.2 / 25 / 1e4, rel=1e-3)


def test_eval_reproduces_the_test_accuracy_of_the_best_checkpoint(make_cfg, tmp_path):
    trained = train(make_cfg(*FAST, "model=cnn", "model.channels=[8]", "model.hidden=16", subdir="train"))
    cfg = make_cfg(f"ckpt_path={trained['best_ckpt']}", config_name="eval", subdir="eval")
    evaluated = evaluate(cfg)
    assert float(evaluated["test/acc"]) == pytest.approx(float(trained["test/acc"]), abs=1e-7)
    assert float(evaluated["test/loss"]) == pytest.approx(float(trained["test/loss"]), rel=1e-6)
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["ckpt_path"] == trained["best_ckpt"]
    # the model was rebuilt from the checkpoint's own config: a CNN, although eval was given no model=cnn
    assert "trainlab.models.cnn.CNN" in (tmp_path / "eval" / "config.yaml").read_text()


def test_eval_refuses_a_missing_checkpoint_clearly(make_cfg, tmp_path):
    cfg = make_cfg(f"ckpt_path={tmp_path}/nope.ckpt", config_name="eval")
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        evaluate(cfg)


def test_eval_refuses_a_file_that_is_not_a_checkpoint(make_cfg, tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    cfg = make_cfg(f"ckpt_path={junk}", config_name="eval")
    with pytest.raises(ValueError, match="not a readable PyTorch Lightning checkpoint"):
        evaluate(cfg)


def weights(ckpt_path: str) -> dict[str, torch.Tensor]:
    return torch.load(ckpt_path, weights_only=True)["state_dict"]


def test_resume_equals_an_uninterrupted_run(make_cfg):
    """2 epochs, then resume to 4 == 4 epochs straight: same weights, same metrics (deterministic CPU run)."""
    common = [
        "seed=7",
        "trainer.deterministic=true",
        "logger=none",
        "test=true",
        "optimizer=momentum",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=0.7",
    ]
    straight = train(make_cfg(*common, "trainer.max_epochs=4", subdir="straight"))
    first = train(make_cfg(*common, "trainer.max_epochs=2", subdir="first"))
    resumed = train(make_cfg(*common, "trainer.max_epochs=4", f"ckpt_path={first['last_ckpt']}", subdir="resumed"))

    assert resumed["epochs"] == straight["epochs"] == 4 and resumed["steps"] == straight["steps"]
    a, b = weights(straight["last_ckpt"]), weights(resumed["last_ckpt"])
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for key in METRIC_KEYS:
        assert float(resumed[key]) == float(straight[key]), key


def test_fast_dev_run_tests_the_current_weights(make_cfg, tmp_path):
    metrics = train(make_cfg("debug=fdr"))
    assert metrics["steps"] == 1 and metrics["best_ckpt"] is None
    assert "test/acc" in json.loads((tmp_path / "metrics.json").read_text())


def test_resume_keeps_a_best_checkpoint_from_before_the_resume(make_cfg, tmp_path, scripted_val_acc):
    """val/acc follows a script whose best epoch (1) comes before the resume at epoch 2; the resumed run must still
    test that epoch's checkpoint (it stays in the first run's directory) and report the same numbers."""
    common = ["seed=3", "trainer.deterministic=true", "logger=none", "callbacks.early_stopping=null", "scheduler=none"]
    straight = train(make_cfg(*common, "trainer.max_epochs=4", subdir="straight"))
    first = train(make_cfg(*common, "trainer.max_epochs=2", subdir="first"))
    resumed = train(make_cfg(*common, "trainer.max_epochs=4", f"ckpt_path={first['last_ckpt']}", subdir="resumed"))
    assert straight["best_epoch"] == 1 and straight["best_ckpt"].endswith("epoch_001.ckpt")
    assert resumed["best_ckpt"] == first["best_ckpt"] and resumed["best_epoch"] == 1
    assert float(resumed["val/acc_best"]) == float(straight["val/acc_best"]) == pytest.approx(0.70)
    assert float(resumed["test/acc"]) == float(straight["test/acc"])
    assert Path(first["best_ckpt"]).is_file()  # nothing of the earlier run was deleted


def test_eval_rebuilds_activation_init_and_regularizers_from_the_checkpoint(make_cfg, tmp_path):
    """Maxout CNN with DropConnect (gaussian inference) and fractional pooling averaged over 2 test passes:
    evaluation is deterministic, and the checkpoint alone rebuilds the same network."""
    trained = train(
        make_cfg(
            "trainer.max_epochs=2",
            "model=cnn",
            "model.channels=[8]",
            "model.hidden=16",
            "activation=maxout",
            "init=kaiming",
            "regularizer=[dropconnect,fractional_pool]",
            "regularizer.dropconnect.inference=gaussian",
            "regularizer.dropconnect.samples=20",
            "regularizer.fractional_pool.test_samples=2",
            subdir="train",
        )
    )
    evaluated = evaluate(make_cfg(f"ckpt_path={trained['best_ckpt']}", config_name="eval", subdir="eval"))
    assert float(evaluated["test/acc"]) == float(trained["test/acc"])
    assert float(evaluated["test/loss"]) == pytest.approx(float(trained["test/loss"]), rel=1e-6)
    saved = (tmp_path / "eval" / "config.yaml").read_text()
    assert "name: maxout" in saved and "inference: gaussian" in saved and "test_samples: 2" in saved


def test_eval_of_several_checkpoints_averages_the_members_probabilities(make_cfg, tmp_path):
    members = [
        train(make_cfg("trainer.max_epochs=2", f"seed={seed}", "logger=none", subdir=f"m{seed}"))["best_ckpt"]
        for seed in (1, 2, 3)
    ]
    ensemble = evaluate(make_cfg(f"ckpt_path=[{','.join(members)}]", config_name="eval", subdir="ens"))
    # each member alone, through the single-checkpoint path
    alone = [
        float(evaluate(make_cfg(f"ckpt_path={m}", config_name="eval", subdir=f"e{i}"))["test/acc"])
        for i, m in enumerate(members)
    ]
    assert ensemble["test/acc_members"] == pytest.approx(alone, abs=1e-6)
    assert ensemble["test/acc_members_mean"] == pytest.approx(sum(alone) / 3, abs=1e-6)
    assert ensemble["ensemble_gain"] == pytest.approx(ensemble["test/acc_ensemble"] - sum(alone) / 3, abs=1e-9)
    assert len(set(alone)) > 1  # the seeds really gave different members
    saved = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert saved["members"] == 3 and saved["test/acc"] == saved["test/acc_ensemble"]

    # the same ensemble's probabilities, averaged by hand
    from trainlab import build, checkpoints
    from trainlab.eval import saved_config, with_saved_config

    cfg = make_cfg(config_name="eval", subdir="manual")
    probs = []
    for path in members:
        module = build.build_module(with_saved_config(cfg, saved_config(path), checkpoints.MODEL_KEYS))
        module.load_state_dict(torch.load(path, weights_only=True)["state_dict"])
        dm = build.build_datamodule(with_saved_config(cfg, saved_config(path), ("data",)))
        dm.setup()
        x, y = dm.splits["test"]
        with torch.no_grad():
            probs.append(module.eval()(x).softmax(-1))
    by_hand = (torch.stack(probs).mean(0).argmax(-1) == y).float().mean().item()
    assert ensemble["test/acc_ensemble"] == pytest.approx(by_hand, abs=1e-9)
