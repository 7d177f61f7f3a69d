"""Per-layer activation statistics and update-to-weight ratios (``callbacks=[default,activation_stats]``): the numbers
match hand computations, and a 10-layer MLP shows the lecture's patterns (collapse under small random weights and
tanh, halving under "Xavier" and ReLU, a steady scale with half the units at 0 under Kaiming and ReLU)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from omegaconf import OmegaConf
from pytorch_lightning import LightningModule
from torch import nn

from trainlab.activation_figures import combined_figure
from trainlab.callbacks import ActivationStats
from trainlab.callbacks.activation_stats import measure_activations
from trainlab.hydra_callbacks import ActivationStatsFigure
from trainlab.train import train

from .conftest import run_cli

WITH_STATS = ["callbacks=[default,activation_stats]", "test=false"]
DEEP = ["model.depth=10", "model.width=256"]
ONE_STEP = ["trainer.max_epochs=1", "+trainer.limit_train_batches=1", "trainer.log_every_n_steps=1"]


def read_stats(run_dir: Path) -> tuple[list[dict], list[dict]]:
    activations = json.loads((run_dir / "activation_stats.json").read_text())
    ratios = json.loads((run_dir / "update_ratio.json").read_text())
    return activations, ratios


def at(entries: list[dict], phase: str) -> list[dict]:
    """One measurement's entries, in layer order."""
    rows = [e for e in entries if e["phase"] == phase]
    return sorted(rows, key=lambda e: int(e["layer"].split("_")[1]))


# ---- numbers against hand computations ----
class Wrapped(LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def tiny_net() -> nn.Sequential:
    """2 -> ReLU(3) -> tanh(2) -> sigmoid(2), with weights chosen so that the outputs are known."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 2), nn.Sigmoid())
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -10.0]))  # unit 3 is < 0 for every input below: a dead unit
        net[2].weight.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.1, 0.0]]))
        net[2].bias.zero_()
        net[4].weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 1.0]]))
        net[4].bias.copy_(torch.tensor([-5.0, 0.0]))
    return net


X = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0], [2.0, 2.0]])


def test_callback_statistics_equal_hand_computed_values_on_a_tiny_network(tmp_path):
    net = tiny_net()
    # by hand, in numpy
    x = X.numpy().astype(np.float64)
    h1 = np.maximum(x @ np.array([[1, 0], [0, 1], [-1, -1]]).T + [0, 0, -10], 0)
    h2 = np.tanh(h1 @ np.array([[3, 0, 0], [0, 0.1, 0]]).T)
    h3 = 1 / (1 + np.exp(-(h2 @ np.array([[10, 0], [0, 1]]).T + [-5, 0])))
    # the callback, fed two batches of two (the statistics combine across batches)
    loader = [(X[:2], torch.zeros(2)), (X[2:], torch.zeros(2))]
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(train_dataloader=lambda: iter(loader)),
        global_step=0,
        current_epoch=0,
        is_global_zero=True,
        loggers=[],
        default_root_dir=str(tmp_path),
    )
    callback = ActivationStats(output_dir=str(tmp_path), batches=2, bins=8, histogram_range=[-2, 2])
    callback.on_fit_start(trainer, Wrapped(net))
    saved = json.loads((tmp_path / "activation_stats.json").read_text())
    assert [e["layer"] for e in saved] == ["layer_1", "layer_2", "layer_3"]
    assert [e["activation"] for e in saved] == ["relu", "tanh", "sigmoid"]
    for entry, h in zip(saved, (h1, h2, h3), strict=True):
        assert entry["step"] == 0 and entry["phase"] == "init" and entry["samples"] == h.size
        assert entry["mean"] == pytest.approx(h.mean(), rel=1e-6)
        assert entry["std"] == pytest.approx(h.std(), rel=1e-6)  # population std (ddof 0)
        assert entry["dead_fraction"] == pytest.approx((h == 0).mean())
        counts, edges = np.histogram(h, bins=8, range=(-2, 2))
        assert entry["histogram"]["counts"] == counts.tolist()
        assert entry["histogram"]["edges"] == pytest.approx(edges.tolist())
    relu, tanh, sigmoid = saved
    assert relu["dead_fraction"] == pytest.approx(7 / 12)  # x1 < 0 once, x2 < 0 once, unit 3 always
    assert relu["dead_unit_fraction"] == pytest.approx(1 / 3) and tanh["dead_unit_fraction"] == 0
    assert relu["saturated_fraction"] is None  # ReLU does not saturate; dead_fraction is its failure mode
    # tanh(3 * relu(x1)) = tanh(3), tanh(6) saturate (|a| > 0.99), tanh(0) twice and tanh(0.1 * x2) do not
    assert tanh["saturated_fraction"] == pytest.approx(2 / 8)
    # sigmoid(10 t - 5): sigmoid(4.95) = 0.993, sigmoid(-5) = 0.0067 (twice), sigmoid(5.0) all saturate
    assert sigmoid["saturated_fraction"] == pytest.approx(4 / 8)


@pytest.mark.parametrize(
    ("module", "pre", "saturated"),
    [
        # tanh(2.6) = 0.9890 is not saturated, tanh(2.7) = 0.9910 is
        (nn.Tanh(), [-5.0, -2.7, -2.6, 0.0, 0.1, 2.6, 2.7, 5.0], [1, 1, 0, 0, 0, 0, 1, 1]),
        # sigmoid(-4.5) = 0.0110, sigmoid(-4.7) = 0.0090, sigmoid(4.5) = 0.9890, sigmoid(4.7) = 0.9910
        (nn.Sigmoid(), [-5.0, -4.7, -4.5, 0.0, 1.0, 4.5, 4.7, 5.0], [1, 1, 0, 0, 0, 0, 1, 1]),
    ],
)
def test_saturated_fraction_of_known_inputs(module, pre, saturated):
    (entry,), _ = measure_activations(module, [torch.tensor(pre)[:, None]])
    assert entry["saturated_fraction"] == pytest.approx(np.mean(saturated))


def test_update_ratio_is_the_relative_change_of_the_weights_and_the_callback_leaves_training_alone(make_cfg, tmp_path):
    from pytorch_lightning import seed_everything

    from trainlab import build

    common = [*ONE_STEP, "regularizer=[dropout]", "test=false"]  # dropout draws random numbers
    plain_cfg = make_cfg(*common, subdir="plain")
    train(plain_cfg)
    cfg = make_cfg(*common, *WITH_STATS, "callbacks.activation_stats.update_ratio_every_n_steps=1", subdir="stats")
    train(cfg)
    _, ratios = read_stats(tmp_path / "stats")
    assert [r["step"] for r in ratios] == [0, 0, 0] and [r["layer"] for r in ratios] == [
        "layer_1",
        "layer_2",
        "layer_3",
    ]

    seed_everything(cfg.seed, verbose=False)  # rebuild the untrained network as train() built it
    build.build_datamodule(cfg)
    before = {k: v for k, v in build.build_module(cfg).net.state_dict().items() if k.endswith("weight")}
    load = lambda d: torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]  # noqa: E731
    after, plain = load(tmp_path / "stats"), load(tmp_path / "plain")
    for r in ratios:
        key = f"{r['module']}.weight"
        w0, w1 = before[key], after[f"net.{key}"]
        assert not torch.equal(w0, w1)
        assert r["ratio"] == pytest.approx(float((w1 - w0).norm() / w0.norm()), rel=1e-5)
    # measuring (which reseeds a DataLoader's shuffle) did not change the run: same dropout masks, same weights
    assert all(torch.equal(after[k], plain[k]) for k in plain if k.startswith("net."))


# ---- the lecture's patterns in a 10-layer MLP ----
@pytest.mark.parametrize(
    ("activation", "init"), [("tanh", "small_random"), ("relu", "xavier"), ("relu", "kaiming"), ("tanh", "xavier")]
)
def test_ten_layers_reproduce_the_lectures_activation_patterns(make_cfg, tmp_path, activation, init):
    train(make_cfg(*WITH_STATS, *DEEP, f"activation={activation}", f"init={init}", *ONE_STEP))
    activations, _ = read_stats(tmp_path)
    layers = at(activations, "init")
    assert len(layers) == 10 and all(e["step"] == 0 for e in layers)
    std = [e["std"] for e in layers]
    shrink = [b / a for a, b in zip(std, std[1:], strict=False)]
    if (activation, init) == ("tanh", "small_random"):
        # W ~ N(0, 0.01^2), fan_in 256, tanh(z) ~ z: each layer multiplies the std by 0.01 * sqrt(256) = 0.16
        assert std[-1] < 1e-6 < 1e-3 < std[0]
        assert all(0.12 < s < 0.20 for s in shrink), shrink
        assert all(e["saturated_fraction"] == 0 for e in layers)
        last = layers[-1]["histogram"]
        middle = len(last["counts"]) // 2  # every value in the two bins around 0 of [-1, 1]
        assert sum(last["counts"][middle - 1 : middle + 1]) == sum(last["counts"]) == layers[-1]["samples"]
    elif activation == "relu" and init == "xavier":
        # std 1/sqrt(fan_in) and ReLU: the variance halves per layer, std x 1/sqrt(2) (the lecture's slow collapse)
        assert all(0.6 < s < 0.85 for s in shrink), shrink
        assert 0.02 < std[-1] / std[0] < 0.1
    elif activation == "relu":
        # Kaiming (std sqrt(2/fan_in)): the scale stays, with about half the outputs exactly 0
        assert all(1 / 3 < s / std[0] < 3 for s in std), std
        assert all(0.4 < e["dead_fraction"] < 0.6 for e in layers)
        # a few units are 0 for every sample (more in deeper layers, as the samples' representations align)
        assert all(e["dead_unit_fraction"] < 0.25 and e["saturated_fraction"] is None for e in layers)
    else:
        # tanh with the lecture's Xavier: a healthy, slowly narrowing spread, hardly saturated
        assert all(0.1 < s < 0.8 for s in std) and all(0.7 < s < 1.0 for s in shrink)
        assert all(e["saturated_fraction"] < 0.2 for e in layers[1:])
    assert layers[0]["mean"] == pytest.approx(0.0, abs=0.1) if activation == "tanh" else layers[0]["mean"] > 0


def test_measurements_per_epoch_update_ratios_every_n_steps_loggers_and_figure(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    metrics = train(
        make_cfg(
            *WITH_STATS,
            "logger=many",
            "trainer.max_epochs=2",
            "callbacks.activation_stats.every_n_epochs=1",
            "callbacks.activation_stats.update_ratio_every_n_steps=10",
        )
    )
    steps_per_epoch = metrics["steps"] // 2
    activations, ratios = read_stats(tmp_path)
    seen = sorted({(e["phase"], e["step"], e["epoch"]) for e in activations}, key=lambda t: t[1])
    assert seen == [("init", 0, 0), ("epoch", steps_per_epoch, 0), ("end", 2 * steps_per_epoch, 1)]
    assert sorted({r["step"] for r in ratios}) == list(range(0, metrics["steps"], 10))
    assert all(1e-5 < r["ratio"] < 1 for r in ratios)
    assert (tmp_path / "activation_stats.png").stat().st_size > 10_000
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [(int(r["step"]), float(r["update_ratio/layer_2"])) for r in rows if r.get("update_ratio/layer_2")]
    assert logged == [(r["step"], pytest.approx(r["ratio"])) for r in ratios if r["layer"] == "layer_2"]
    stds = [float(r["activations/layer_1/std"]) for r in rows if r.get("activations/layer_1/std")]
    assert stds == pytest.approx([e["std"] for e in activations if e["layer"] == "layer_1"])

    from .test_loggers import wandb_run

    history = wandb_run(tmp_path)["history"]
    histograms = [h for h in history if h.get("activations/layer_2/_type") == "histogram"]
    assert len(histograms) == 3  # init, epoch 1, end
    first = next(e for e in activations if e["layer"] == "layer_2")
    assert histograms[0]["activations/layer_2/values"] == first["histogram"]["counts"]
    assert histograms[0]["activations/layer_2/bins"] == pytest.approx(first["histogram"]["edges"])


# ---- a multirun's combined figure ----
def test_combined_figure_draws_every_job_with_its_label(tmp_path):
    for job, (name, init, module) in enumerate([("tanh", "small_random", nn.Tanh()), ("relu", "kaiming", nn.ReLU())]):
        job_dir = tmp_path / str(job)
        job_dir.mkdir()
        net = nn.Sequential(nn.Linear(4, 8), module, nn.Linear(8, 8), type(module)())
        entries, _ = measure_activations(net, [torch.randn(32, 4)])
        entries = [e | {"step": 0, "phase": "init"} for e in entries]
        (job_dir / "activation_stats.json").write_text(json.dumps(entries))
        (job_dir / "config.yaml").write_text(yaml.safe_dump({"activation": {"name": name}, "init": {"scheme": init}}))
        (job_dir / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    (tmp_path / "multirun.yaml").write_text("{}")
    ActivationStatsFigure().on_multirun_end(config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert (tmp_path / "activation_stats.png").stat().st_size > 10_000
    from trainlab.activation_figures import read_job

    assert read_job(tmp_path / "0")["label"] == "tanh / small_random"
    assert read_job(tmp_path / "1")["test_acc"] == 0.5
    assert combined_figure(tmp_path / "nothing") is None  # no jobs: no figure, no error


@pytest.mark.slow
def test_init_study_multirun_writes_one_combined_figure(tmp_path):
    quiet = ["trainer.enable_progress_bar=false", "extras.print_config=false", "trainer.accelerator=cpu"]
    run_cli(
        ["trainlab-train", "-m", "experiment=init_study", "trainer.max_epochs=1", "test=false", *quiet], cwd=tmp_path
    )
    (sweep,) = (tmp_path / "logs/init_study/multiruns").iterdir()
    assert (sweep / "activation_stats.png").stat().st_size > 50_000
    jobs = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        assert cfg["model"]["depth"] == 10
        jobs[cfg["activation"]["name"], cfg["init"]["scheme"]] = at(read_stats(job)[0], "init")
    assert set(jobs) == {(a, i) for a in ("tanh", "relu") for i in ("small_random", "xavier", "kaiming")}
    assert jobs["tanh", "small_random"][-1]["std"] < 1e-6  # collapse
    kaiming = jobs["relu", "kaiming"]
    assert kaiming[-1]["std"] > kaiming[0]["std"] / 3 and math.isclose(kaiming[-1]["dead_fraction"], 0.5, abs_tol=0.1)


def test_settings_out_of_range_are_refused_naming_the_setting():
    import re

    for settings, message in [
        ({"batches": 0}, "batches=0: training batches per measurement must be an integer >= 1"),
        ({"bins": 0}, "bins=0: histogram bins must be an integer >= 1"),
        (
            {"every_n_epochs": -1},
            "every_n_epochs=-1: epochs between extra measurements (0: none) must be an integer >= 0",
        ),
        ({"plot": "yes"}, "plot='yes': whether to plot the activation statistics must be true or false"),
        ({"histogram_range": [1, -1]}, "callbacks.activation_stats.histogram_range=[1, -1]: give [lo, hi], lo < hi"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            ActivationStats(**settings)
