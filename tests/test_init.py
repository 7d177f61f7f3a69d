"""Each init scheme gives the weights its stated standard deviation, for several layer shapes."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from trainlab.activations import Activation
from trainlab.init import WeightInit, fans

# (fan_in, fan_out) shapes: square, wide, narrow; and a conv layer (fan = channels * 3 * 3)
LINEAR_SHAPES = [(400, 400), (200, 800), (1000, 100)]


def layer_std(layer: nn.Module) -> float:
    return layer.weight.detach().double().std().item()


def tolerance(n: int) -> float:
    """Relative tolerance on a sample std from n normal draws: 5 standard errors (SE ~ 1/sqrt(2n))."""
    return 5.0 / math.sqrt(2 * n)


EXPECTED = {
    "small_random": lambda fi, fo, gain: 0.01,
    "xavier": lambda fi, fo, gain: 1 / math.sqrt(fi),
    "lecun": lambda fi, fo, gain: 1 / math.sqrt(fi),
    "glorot": lambda fi, fo, gain: math.sqrt(2 / (fi + fo)),
    "kaiming": lambda fi, fo, gain: gain / math.sqrt(fi),
}


@pytest.mark.parametrize("scheme", sorted(EXPECTED))
@pytest.mark.parametrize("fan_in, fan_out", LINEAR_SHAPES)
@pytest.mark.parametrize("distribution", ["normal", "uniform"])
def test_linear_weight_std_matches_the_formula(scheme, fan_in, fan_out, distribution):
    torch.manual_seed(0)
    layer = nn.Linear(fan_in, fan_out)
    WeightInit(scheme, distribution=distribution)(layer, Activation("relu"))
    expected = EXPECTED[scheme](fan_in, fan_out, math.sqrt(2))
    assert layer_std(layer) == pytest.approx(expected, rel=tolerance(fan_in * fan_out))
    assert layer.weight.mean().abs().item() < 5 * expected / math.sqrt(fan_in * fan_out)
    assert torch.count_nonzero(layer.bias) == 0
    if distribution == "uniform":  # U(-sqrt(3) std, sqrt(3) std)
        assert layer.weight.abs().max().item() <= math.sqrt(3) * expected + 1e-9


@pytest.mark.parametrize("scheme", sorted(EXPECTED))
def test_conv_fan_in_counts_the_kernel_area(scheme):
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    fan_in, fan_out = fans(conv.weight)
    assert (fan_in, fan_out) == (64 * 9, 128 * 9)
    WeightInit(scheme)(conv, Activation("relu"))
    expected = EXPECTED[scheme](fan_in, fan_out, math.sqrt(2))
    assert layer_std(conv) == pytest.approx(expected, rel=tolerance(conv.weight.numel()))


@pytest.mark.parametrize("activation, slope", [("leaky_relu", 0.01), ("leaky_relu", 0.3), ("prelu", 0.25)])
def test_kaiming_gain_follows_the_negative_slope(activation, slope):
    torch.manual_seed(0)
    layer = nn.Linear(500, 500)
    WeightInit("kaiming")(layer, Activation(activation, negative_slope=slope))
    expected = math.sqrt(2 / ((1 + slope**2) * 500))
    assert layer_std(layer) == pytest.approx(expected, rel=tolerance(500 * 500))


def test_kaiming_fan_out_mode_uses_the_outputs():
    torch.manual_seed(0)
    layer = nn.Linear(100, 900)
    WeightInit("kaiming", mode="fan_out")(layer, Activation("relu"))
    assert layer_std(layer) == pytest.approx(math.sqrt(2 / 900), rel=tolerance(100 * 900))


def test_glorot_is_not_the_lectures_xavier_unless_fans_are_equal():
    torch.manual_seed(0)
    wide = nn.Linear(100, 900)
    WeightInit("glorot")(wide)
    assert layer_std(wide) == pytest.approx(math.sqrt(2 / 1000), rel=0.02)  # 0.0447 ...
    assert abs(layer_std(wide) - 1 / math.sqrt(100)) > 0.05  # ... not 1/sqrt(100) = 0.1
    assert WeightInit("glorot").weight_std(300, 300) == pytest.approx(WeightInit("xavier").weight_std(300, 300))


def test_orthogonal_gives_orthonormal_rows():
    torch.manual_seed(0)
    layer = nn.Linear(300, 200)
    WeightInit("orthogonal")(layer)
    w = layer.weight.detach().double()
    assert torch.allclose(w @ w.T, torch.eye(200, dtype=torch.float64), atol=1e-5)


def test_zeros_init_zeroes_weights_and_biases():
    layer = nn.Linear(10, 5)
    WeightInit("zeros")(layer)
    assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0


def test_constant_bias_is_applied_to_every_layer():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Conv1d(8, 8, 1), nn.Linear(8, 2))
    WeightInit("kaiming", bias=0.01)(net, Activation("relu"))
    biases = [m.bias for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    assert len(biases) == 3 and all(torch.all(b == 0.01) for b in biases)


def test_default_keeps_torchs_weights_and_can_still_set_the_bias():
    torch.manual_seed(0)
    a = nn.Linear(50, 50)
    torch.manual_seed(0)
    b = nn.Linear(50, 50)
    WeightInit("default", bias=0.01)(b)
    assert torch.equal(a.weight, b.weight) and torch.all(b.bias == 0.01)


def test_normalisation_layers_keep_their_init():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    WeightInit("zeros")(net)
    assert torch.all(net[1].weight == 1) and torch.all(net[1].bias == 0)


def test_bad_settings_are_refused_with_the_choices():
    schemes = "default, zeros, small_random, xavier, glorot, kaiming, lecun, orthogonal"
    for make, message in [
        (lambda: WeightInit("he_normal"), f"scheme='he_normal': the init scheme must be one of {schemes}"),
        (
            lambda: WeightInit("kaiming", distribution="cauchy"),
            "distribution='cauchy': the init's distribution must be one of normal, uniform",
        ),
        (
            lambda: WeightInit("kaiming", mode="fan_avg"),
            "mode='fan_avg': the fan the init keeps must be one of fan_in, fan_out",
        ),
        (lambda: WeightInit("small_random", std=-1), "std=-1: standard deviation of the weights must be a number > 0"),
        (lambda: WeightInit("small_random", std=0), "std=0: standard deviation of the weights must be a number > 0"),
        (lambda: WeightInit("orthogonal", gain=0.0), "gain=0.0: the init's gain must be a number > 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            make()
