"""Regularizers reach the networks from the config: dropout's statistics, the penalty in the training loss,
the combinations that cannot apply refused with the options that work."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from trainlab import build
from trainlab.models.mlp import MLP
from trainlab.regularizers.dropout import AlphaDropout, Dropout
from trainlab.regularizers.penalties import WeightPenalty
from trainlab.train import train


def test_dropout_zeroes_the_expected_fraction_and_preserves_the_mean():
    """torch's inverted dropout, as configured: p is the DROP probability, survivors scaled by 1/(1-p)."""
    torch.manual_seed(0)
    net = MLP(input_shape=(10,), num_classes=2, depth=1, width=10, dropout=Dropout(0.3))
    drop = next(m for m in net.modules() if isinstance(m, nn.Dropout))
    assert drop.p == 0.3
    h = torch.rand(20_000, 100) + 0.5
    out = drop(h)
    zeroed = (out == 0).float().mean().item()
    assert zeroed == pytest.approx(0.3, abs=5 * (0.3 * 0.7 / h.numel()) ** 0.5)
    assert out.mean().item() == pytest.approx(h.mean().item(), rel=5e-3)
    kept = out != 0
    assert torch.allclose(out[kept], h[kept] / 0.7)
    drop.eval()
    assert torch.equal(drop(h), h)  # identity at test time


def test_dropout_follows_every_hidden_activation_of_the_mlp():
    net = MLP(input_shape=(4,), num_classes=2, depth=3, width=5, dropout=Dropout(0.5))
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Flatten"] + ["Linear", "ReLU", "Dropout"] * 3 + ["Linear"]


def test_alpha_dropout_keeps_selu_statistics():
    torch.manual_seed(0)
    net = MLP(input_shape=(4,), num_classes=2, depth=1, width=5, alpha_dropout=AlphaDropout(0.2))
    alpha = next(m for m in net.modules() if isinstance(m, nn.AlphaDropout))
    z = torch.randn(1_000_000)
    out = alpha(z)
    assert abs(out.mean().item()) < 0.01 and abs(out.var().item() - 1) < 0.01


@pytest.mark.parametrize(
    "model, regularizer, works",
    [
        ("mlp", "stochastic_depth", "model=resnet"),
        ("cnn", "stochastic_depth", "model=resnet"),
        ("mlp", "fractional_pool", "model=cnn"),
        ("resnet", "fractional_pool", "model=cnn"),
        ("resnet", "dropconnect", "model=cnn or model=mlp"),
    ],
)
def test_a_regularizer_the_model_cannot_apply_is_refused(make_cfg, model, regularizer, works):
    cfg = make_cfg(f"model={model}", f"regularizer=[{regularizer}]")
    with pytest.raises(
        ValueError, match=f"regularizer={regularizer} does not apply to model={model}; it works with {works}$"
    ):
        build.build_net(cfg)


@pytest.mark.parametrize(
    "model, regularizers, module",
    [
        ("mlp", "dropout", "Dropout"),
        ("cnn", "dropout", "Dropout"),
        ("resnet", "dropout", "Dropout"),
        ("mlp", "alpha_dropout", "AlphaDropout"),
        ("mlp", "dropconnect", "DropConnectLinear"),
        ("cnn", "dropconnect", "DropConnectLinear"),
        ("cnn", "fractional_pool", "FractionalMaxPool2d"),
        ("resnet", "stochastic_depth", "StochasticDepth"),
    ],
)
def test_a_layer_regularizer_puts_its_layer_into_the_network(make_cfg, model, regularizers, module):
    net = build.build_net(make_cfg(f"model={model}", f"regularizer=[{regularizers}]"))
    assert module in {type(m).__name__ for m in net.modules()}


def test_fractional_pool_replaces_the_cnn_pooling_and_shrinks_by_its_ratio(make_cfg):
    net = build.build_net(
        make_cfg("model=cnn", "regularizer=[fractional_pool]", "regularizer.fractional_pool.ratio=0.75")
    )
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    # 8 -> floor(8 * 0.75) = 6 -> floor(6 * 0.75) = 4 (at least half the input: 3): 64 channels x 4 x 4
    assert net.features(torch.zeros(2, 1, 8, 8)).shape == (2, 64, 4, 4)


def test_fractional_pool_test_time_averaging_is_deterministic(make_cfg):
    cfg = make_cfg("model=cnn", "regularizer=[fractional_pool]", "regularizer.fractional_pool.test_samples=3")
    net = build.build_net(cfg).eval()
    x = torch.rand(4, 1, 8, 8)
    out = net(x)
    assert torch.equal(out, net(x))
    assert torch.allclose(out.exp().sum(-1), torch.ones(4), atol=1e-5)  # log of averaged probabilities


def test_penalties_add_up_to_one_weighted_sum(make_cfg):
    from trainlab.techniques import Techniques

    def penalty(*overrides):
        return Techniques(t for _, t in build.build_techniques(make_cfg(*overrides)))

    net = torch.nn.Linear(3, 2)
    w = net.weight.detach()
    both = penalty("regularizer=[l1,l2]", "regularizer.l1.weight=0.001", "regularizer.l2.weight=0.01")
    assert [(t.l1, t.l2) for t in both.loss_terms] == [(0.001, 0.0), (0.0, 0.01)]
    expected = 0.001 * w.abs().sum() + 0.01 * w.pow(2).sum()  # biases excluded
    assert both.loss_term(net).item() == pytest.approx(expected.item(), rel=1e-6)
    (elastic,) = penalty("regularizer=[elastic_net]").loss_terms
    assert (elastic.l1, elastic.l2) == (1e-5, 1e-4)
    assert penalty("regularizer=[dropout]").loss_term(net) is None


def test_training_logs_the_penalty_as_reg_loss(make_cfg, tmp_path):
    metrics = train(make_cfg("regularizer=[l2]", "regularizer.l2.weight=0.01", "trainer.max_epochs=1", "test=false"))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        (row,) = [r for r in csv.DictReader(f) if r.get("train/reg_loss")]
    reg = float(row["train/reg_loss"])
    assert float(metrics["train/reg_loss"]) == pytest.approx(reg)
    # the logged value is the epoch mean of the penalty, which lies between its first and its last value
    start = WeightPenalty(l2=0.01)(build.build_net(make_cfg(subdir="fresh"))).item()
    last_ckpt = torch.load(metrics["last_ckpt"], weights_only=True)["state_dict"]
    end = 0.01 * sum((v**2).sum().item() for k, v in last_ckpt.items() if k.endswith("weight"))
    assert min(start, end) <= reg <= max(start, end)


def test_selu_gets_lecun_init_unless_another_init_is_chosen(make_cfg):
    torch.manual_seed(0)
    net = build.build_net(make_cfg("activation=selu", "model.width=400", "model.depth=2"))
    second = [m for m in net.modules() if isinstance(m, nn.Linear)][1]
    assert second.weight.std().item() == pytest.approx(1 / 400**0.5, rel=0.03)  # LeCun: 1/sqrt(fan_in)
    torch.manual_seed(0)
    net = build.build_net(make_cfg("activation=selu", "init=kaiming", "init.gain=2.0", "model.width=400"))
    second = [m for m in net.modules() if isinstance(m, nn.Linear)][1]
    assert second.weight.std().item() == pytest.approx(2.0 / 400**0.5, rel=0.03)


def test_init_from_the_config_reaches_every_layer(make_cfg):
    torch.manual_seed(0)
    net = build.build_net(make_cfg("init=kaiming", "init.bias=0.01", "activation=leaky_relu", "model.width=300"))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert all(torch.all(m.bias == 0.01) for m in linears)
    std = (2 / ((1 + 0.01**2) * 300)) ** 0.5
    assert linears[1].weight.std().item() == pytest.approx(std, rel=0.03)
