"""DropConnect (Wan et al., ICML 2013): training moments, mask statistics, both inference rules, gradients.

Statistical checks use a fixed seed, so they are deterministic; their tolerances are 5 standard errors, so a
correct layer passes them for (almost) any seed while an off-by-q or off-by-variance bug exceeds them many times.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.regularizers.dropconnect import DropConnect, DropConnectLinear

Z = 5.0  # tolerance in standard errors


def small_layer(p: float, **kwargs) -> DropConnectLinear:
    """A 3x4 layer in float64 with fixed, hand-written weights and bias."""
    layer = DropConnectLinear(4, 3, p=p, **kwargs).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -1.0, 2.0, 0.3], [1.5, 0.2, -0.7, -1.2], [-0.4, 0.9, 0.1, 1.1]]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return layer


X = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)


def paper_moments(layer: DropConnectLinear, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``q W x + b`` and variance ``q(1-q) (W*W)(x*x)`` of the masked pre-activation; x is [in] or [N, in]."""
    w, q = layer.weight.detach(), layer.q
    return q * x @ w.T + layer.bias.detach(), q * (1 - q) * (x * x) @ (w * w).T


def test_training_preactivation_has_the_papers_mean_and_variance():
    layer, n = small_layer(p=0.3), 20000
    torch.manual_seed(0)
    with torch.no_grad():
        u = layer.train()(X.repeat(n, 1))
    mean, var = paper_moments(layer, X)
    centred = u - u.mean(0)
    m2, m4 = (centred**2).mean(0), (centred**4).mean(0)
    # standard errors: of the sample mean sqrt(var/n), of the sample variance sqrt((mu4 - var^2)/n)
    assert torch.all((u.mean(0) - mean).abs() < Z * (var / n).sqrt())
    assert torch.all((m2 - var).abs() < Z * ((m4 - m2**2) / n).sqrt())
    # no masking, or dropout-style 1/q rescaling, would have mean W x + b: far outside the tolerance
    unscaled = layer.weight.detach() @ X + layer.bias.detach()
    assert torch.all((u.mean(0) - unscaled).abs() > 4 * Z * (var / n).sqrt())


def test_fraction_of_dropped_weights_is_p():
    # W = ones, no bias, x = e_k: u[n, j] = M_n[j, k], so u is 0/1 and its mean over examples is q per output unit
    p, n = 0.3, 20000
    layer = DropConnectLinear(4, 5, p=p, bias=False).train()
    nn.init.ones_(layer.weight)
    torch.manual_seed(1)
    for k in range(4):
        with torch.no_grad():
            u = layer(F.one_hot(torch.full((n,), k), 4).float())
        assert set(u.unique().tolist()) <= {0.0, 1.0}
        kept = u.mean(0)
        assert torch.all((kept - (1 - p)).abs() < Z * math.sqrt(p * (1 - p) / n)), kept


def test_masks_differ_between_examples_in_the_same_batch():
    layer = DropConnectLinear(16, 4, p=0.5).train()
    torch.manual_seed(2)
    with torch.no_grad():
        out = layer(torch.randn(1, 16).repeat(8, 1))
    assert out.unique(dim=0).shape[0] == 8


def test_eval_mean_is_activation_of_q_scaled_weights():
    layer = small_layer(p=0.4, activation=nn.Tanh).eval()
    x = torch.stack([X, -X, 2 * X])
    with torch.no_grad():
        out = layer(x)
        assert torch.equal(out, torch.tanh(F.linear(x, 0.6 * layer.weight, layer.bias)))
        torch.testing.assert_close(out, torch.tanh(x @ (0.6 * layer.weight).T + layer.bias), rtol=0, atol=1e-12)


@pytest.mark.parametrize("inference", ["mean", "gaussian"])
def test_eval_is_deterministic_and_leaves_the_global_rng_alone(inference: str):
    layer = small_layer(p=0.5, inference=inference, samples=50, activation=nn.ReLU).eval()
    x = torch.stack([X, -X])
    with torch.no_grad():
        first = layer(x)
        torch.manual_seed(123)
        state = torch.get_rng_state()
        second = layer(x)
    assert torch.equal(first, second)
    assert torch.equal(state, torch.get_rng_state())


def test_eval_gaussian_relu_matches_closed_form_expectation():
    s = 20000
    layer = small_layer(p=0.5, inference="gaussian", samples=s, activation=nn.ReLU).eval()
    x = torch.stack([X, -X, 0.3 * X])
    with torch.no_grad():
        out = layer(x)
    mu, var = paper_moments(layer, x)
    sd = var.sqrt()
    normal = torch.distributions.Normal(0.0, 1.0)
    cdf, pdf = normal.cdf(mu / sd), normal.log_prob(mu / sd).exp()
    expected = mu * cdf + sd * pdf  # E[relu(u)], u ~ N(mu, sd^2)
    second = (mu**2 + var) * cdf + mu * sd * pdf  # E[relu(u)^2]
    assert (mu > 0).any() and (mu < 0).any()  # both sides of the kink are exercised
    assert torch.all((out - expected).abs() < Z * ((second - expected**2) / s).sqrt()), (out, expected)
    # the cheap mean rule relu(mu) is detectably different here, so this test separates the two modes
    assert ((out - mu.clamp_min(0)).abs() > 0.1).any()


def test_eval_gaussian_without_activation_is_near_the_mean():
    s = 20000
    layer = small_layer(p=0.3, inference="gaussian", samples=s).eval()
    x = torch.stack([X, -X])
    with torch.no_grad():
        out = layer(x)
    mu, var = paper_moments(layer, x)
    assert torch.all((out - mu).abs() < Z * (var / s).sqrt())


def test_gradient_reaches_only_the_kept_weights():
    n, q, d_in, d_out = 3, 0.5, 8, 6
    torch.manual_seed(0)
    layer = DropConnectLinear(d_in, d_out, p=1 - q).train()
    x, g = torch.randn(n, d_in), torch.randn(n, d_out)
    torch.manual_seed(7)  # the layer's mask is its first draw from the global RNG
    mask = torch.bernoulli(torch.full((n, d_out, d_in), q))
    torch.manual_seed(7)
    out = layer(x)
    (out * g).sum().backward()
    with torch.no_grad():
        torch.testing.assert_close(out, torch.einsum("noi,ni->no", mask * layer.weight, x) + layer.bias)
        torch.testing.assert_close(layer.weight.grad, torch.einsum("no,ni,noi->oi", g, x, mask))
        torch.testing.assert_close(layer.bias.grad, g.sum(0))  # the bias is never masked
    dropped_everywhere = mask.sum(0) == 0
    assert dropped_everywhere.any() and (~dropped_everywhere).any()
    assert torch.all(layer.weight.grad[dropped_everywhere] == 0)
    assert torch.all(layer.weight.grad[~dropped_everywhere] != 0)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_invalid_p_raises_naming_the_setting(p: float):
    message = f"p={p}: probability of zeroing a weight must be a number in [0, 1)"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        DropConnectLinear(4, 3, p=p)
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        DropConnect(p=p)


def test_invalid_inference_raises_listing_both_modes():
    message = "inference='median': DropConnect's inference must be one of mean, gaussian"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        DropConnectLinear(4, 3, inference="median")
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        DropConnect(inference="median")


def test_invalid_samples_and_non_2d_input_raise():
    with pytest.raises(ValueError, match=r"samples=0: samples of DropConnect's inference must be an integer >= 1$"):
        DropConnectLinear(4, 3, samples=0)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        DropConnectLinear(4, 3)(torch.zeros(2, 3, 4))


def test_repr_shows_p_inference_and_samples():
    text = repr(DropConnectLinear(4, 3, p=0.25, inference="gaussian", samples=7, activation=nn.ReLU))
    assert "p=0.25, inference=gaussian, samples=7" in text and "ReLU" in text


def test_gaussian_inference_feeds_the_activation_2d_batches_so_maxout_works():
    from trainlab.activations import Activation

    torch.manual_seed(0)
    layer = DropConnectLinear(5, 8, p=0.5, inference="gaussian", samples=50, activation=Activation("maxout")).eval()
    out = layer(torch.randn(3, 5))
    assert out.shape == (3, 4)  # 8 pieces -> 4 maxout units per example, averaged over the 50 samples
