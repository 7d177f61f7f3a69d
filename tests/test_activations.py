"""Each activation equals its formula at chosen points, value and gradient, and carries the right Kaiming gain."""

from __future__ import annotations

import math
import re

import pytest
import torch

from trainlab.activations import NAMES, Activation

X = torch.tensor([-3.0, -1.0, -0.5, -1e-3, 1e-3, 0.5, 1.0, 3.0], dtype=torch.float64)
LAMBDA, ALPHA = 1.0507009873554805, 1.6732632423543772  # SELU's constants (Klambauer et al. 2017)


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def phi(x):  # standard normal CDF
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


#: name, extra settings, f(x), f'(x) — written from the definitions, not from torch
FORMULAS = [
    ("sigmoid", {}, sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x))),
    ("tanh", {}, math.tanh, lambda x: 1 - math.tanh(x) ** 2),
    ("relu", {}, lambda x: max(0.0, x), lambda x: 1.0 if x > 0 else 0.0),
    ("leaky_relu", {}, lambda x: x if x > 0 else 0.01 * x, lambda x: 1.0 if x > 0 else 0.01),
    ("leaky_relu", {"negative_slope": 0.2}, lambda x: x if x > 0 else 0.2 * x, lambda x: 1.0 if x > 0 else 0.2),
    ("prelu", {}, lambda x: x if x > 0 else 0.25 * x, lambda x: 1.0 if x > 0 else 0.25),
    ("elu", {}, lambda x: x if x > 0 else math.exp(x) - 1, lambda x: 1.0 if x > 0 else math.exp(x)),
    (
        "elu",
        {"alpha": 0.5},
        lambda x: x if x > 0 else 0.5 * (math.exp(x) - 1),
        lambda x: 1.0 if x > 0 else 0.5 * math.exp(x),
    ),
    (
        "selu",
        {},
        lambda x: LAMBDA * (x if x > 0 else ALPHA * (math.exp(x) - 1)),
        lambda x: LAMBDA * (1.0 if x > 0 else ALPHA * math.exp(x)),
    ),
    (
        "gelu",
        {},
        lambda x: x * phi(x),
        lambda x: phi(x) + x * math.exp(-x * x / 2) / math.sqrt(2 * math.pi),
    ),
    ("silu", {}, lambda x: x * sigmoid(x), lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x)))),
]


@pytest.mark.parametrize("name, settings, f, df", FORMULAS, ids=[f"{n}-{s}" for n, s, *_ in FORMULAS])
def test_activation_matches_its_formula_and_derivative(name, settings, f, df):
    module = Activation(name, **settings)().double()
    x = X.clone().requires_grad_(True)
    y = module(x)
    y.sum().backward()
    expected = torch.tensor([f(v) for v in X.tolist()], dtype=torch.float64)
    expected_grad = torch.tensor([df(v) for v in X.tolist()], dtype=torch.float64)
    assert torch.allclose(y.detach(), expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(x.grad, expected_grad, rtol=1e-8, atol=1e-10)


def test_sigmoid_gradient_is_at_most_a_quarter():
    x = torch.linspace(-10, 10, 2001, requires_grad=True)
    Activation("sigmoid")()(x).sum().backward()
    assert x.grad.max().item() == pytest.approx(0.25, abs=1e-6)


def test_prelu_slope_is_learned_by_backprop():
    prelu = Activation("prelu", negative_slope=0.25)()
    x = torch.tensor([-2.0, -1.0, 3.0])
    prelu(x).sum().backward()
    assert prelu.weight.grad.item() == pytest.approx(-3.0)  # d/da of a*x summed over the negative inputs
    assert prelu.weight.requires_grad and prelu.weight.numel() == 1


def test_selu_has_zero_mean_unit_variance_fixed_point():
    torch.manual_seed(0)
    z = torch.randn(2_000_000, dtype=torch.float64)
    y = Activation("selu")()(z)
    assert abs(y.mean().item()) < 3e-3 and abs(y.var().item() - 1.0) < 5e-3


def test_relu_like_activations_report_kaiming_gains():
    assert Activation("relu").gain == pytest.approx(math.sqrt(2))
    assert Activation("leaky_relu", negative_slope=0.1).gain == pytest.approx(math.sqrt(2 / 1.01))
    assert Activation("prelu").gain == pytest.approx(math.sqrt(2 / (1 + 0.25**2)))
    assert Activation("tanh").gain == pytest.approx(5 / 3)
    assert Activation("selu").gain == 1.0  # not torch's 3/4: LeCun's 1/sqrt(fan_in) keeps SELU normalised
    assert Activation("maxout").gain == 1.0


def test_only_maxout_widens_the_layer_before_it():
    assert {n: Activation(n).pieces for n in NAMES} == {n: (2 if n == "maxout" else 1) for n in NAMES}
    assert Activation("maxout", pieces=3).pieces == 3


def test_unknown_activation_is_refused_with_the_valid_names():
    names = "sigmoid, tanh, relu, leaky_relu, prelu, elu, selu, maxout, gelu, silu"
    with pytest.raises(ValueError, match=re.escape(f"name='relu6': the activation must be one of {names}") + "$"):
        Activation("relu6")


def test_every_activation_returns_a_fresh_module():
    for name in NAMES:
        act = Activation(name)
        assert act() is not act()


def test_maxout_with_one_piece_is_refused_as_linear():
    with pytest.raises(ValueError, match=r"^pieces=1: maxout's pieces must be an integer >= 2$"):
        Activation("maxout", pieces=1)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"name": "leaky_relu", "negative_slope": -0.1}, "negative_slope=-0.1: slope for x < 0 must be a number >= 0"),
        ({"name": "elu", "alpha": 0.0}, "alpha=0.0: ELU's saturation value must be a number > 0"),
        ({"name": "gelu", "approximate": "erf"}, "approximate='erf': GELU's approximation must be one of none, tanh"),
    ],
)
def test_settings_out_of_range_are_refused(settings: dict, message: str):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        Activation(**settings)
