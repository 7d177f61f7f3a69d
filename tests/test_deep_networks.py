"""The lecture's deep-network observations, reproduced with trainlab's own MLP, Activation and WeightInit.

Each test builds a deep :class:`~trainlab.models.mlp.MLP`, initialises it with a :class:`~trainlab.init.WeightInit`
scheme and records the output of every hidden activation (iterating ``net.layers``): these are the per-layer
activation statistics of the lecture (small random weights collapse, the lecture's Xavier suits tanh but halves
ReLU's second moment per layer, Kaiming keeps ReLU at scale, SELU self-normalises only with LeCun init), plus the
symmetry of zero init and the collapse of a linear-activation network to one linear map
(``../shared/reference/techniques.md`` sections 1 and 3).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import Tensor, nn

from trainlab.activations import Activation
from trainlab.init import WeightInit
from trainlab.models.mlp import MLP

WIDTH, BATCH = 500, 1000


def hidden_activations(scheme: str, activation: str, depth: int = 10, seed: int = 0, **init: float) -> list[Tensor]:
    """Outputs of the ``depth`` hidden activations of a width-500 MLP fed 1000 samples from N(0, 1)."""
    torch.manual_seed(seed)
    act = Activation(activation)
    net = MLP((WIDTH,), 10, depth=depth, width=WIDTH, activation=act)
    WeightInit(scheme, **init)(net, act)
    h, outputs = torch.randn(BATCH, WIDTH), []
    with torch.no_grad():
        for layer in net.layers:
            h = layer(h)
            if not isinstance(layer, (nn.Flatten, nn.Linear)):
                outputs.append(h)
    assert len(outputs) == depth
    return outputs


def stds(outputs: list[Tensor]) -> list[float]:
    return [h.std().item() for h in outputs]


def test_small_random_init_shrinks_tanh_activations_geometrically_to_zero() -> None:
    # Near 0 tanh is the identity, so every layer multiplies the std by 0.01 * sqrt(500) = 0.224 (measured: 0.222 to
    # 0.226 per layer over 20 seeds); after 10 layers the std is 0.224^10 = 3.1e-7 (measured 2.96e-7 to 3.01e-7).
    s = stds(hidden_activations("small_random", "tanh", std=0.01))
    per_layer = 0.01 * math.sqrt(WIDTH)
    ratios = [b / a for a, b in pairwise(s)]
    assert all(0.9 * per_layer < r < 1.1 * per_layer for r in ratios), ratios
    assert s[-1] < 1e-6
    assert 0.5 < s[-1] / per_layer**10 < 2.0, s[-1]


def test_kaiming_init_keeps_relu_activations_at_unit_scale_in_every_layer() -> None:
    # std = sqrt(2 / fan_in) keeps the pre-activation variance at 2, so every ReLU output has std sqrt(1 - 1/pi) = 0.83
    # (measured 0.67 to 1.03 in every layer, last/first 0.81 to 1.12, over 20 seeds).
    s = stds(hidden_activations("kaiming", "relu"))
    assert all(0.5 < v < 2.0 for v in s), s
    assert 0.5 < s[-1] / s[0] < 2.0


def test_lecture_xavier_init_halves_relu_second_moment_per_layer() -> None:
    # std = 1 / sqrt(fan_in): each ReLU keeps half of the second moment, so the std falls by 1/sqrt(2) per layer and
    # last/first = 2^-(9/2) = 0.044 (measured per layer 0.63 to 0.80; last/first 0.81 to 1.12 times 2^-4.5).
    s = stds(hidden_activations("xavier", "relu"))
    ratios = [b / a for a, b in pairwise(s)]
    assert all(0.5 < r < 0.9 for r in ratios), ratios
    assert s[-1] / s[0] < 0.1
    assert 0.5 < (s[-1] / s[0]) / 2**-4.5 < 2.0


def test_lecture_xavier_init_keeps_tanh_activations_in_a_useful_band() -> None:
    # "Good for tanh": neither collapsed (std falls slowly, 0.63 -> 0.23 over 10 layers; small_random gives 3e-7)
    # nor saturated (at most 0.9% of the outputs beyond |0.99| in any layer, over 20 seeds).
    outputs = hidden_activations("xavier", "tanh")
    s = stds(outputs)
    assert all(0.1 < v < 0.9 for v in s), s
    assert max((h.abs() > 0.99).float().mean().item() for h in outputs) < 0.05


def test_selu_self_normalises_with_lecun_init_but_not_with_torch_selu_gain() -> None:
    # SELU's fixed point is mean 0, variance 1 when the weights have variance 1 / fan_in (LeCun). Measured over 24
    # layers and 20 seeds: |mean| <= 0.011, variance 0.965 to 1.037 in every layer.
    lecun = hidden_activations("lecun", "selu", depth=24)
    assert all(abs(h.mean().item()) < 0.05 for h in lecun), [h.mean().item() for h in lecun]
    assert all(0.9 < h.var().item() < 1.1 for h in lecun), [h.var().item() for h in lecun]
    # torch's calculate_gain('selu') = 3/4 scales the weights' variance by 9/16: the variance drifts to ~0.05 by
    # layer 24 (measured 0.048 to 0.062), far from the self-normalising fixed point.
    torch_gain = hidden_activations("kaiming", "selu", depth=24, gain=0.75)
    assert torch_gain[-1].var().item() < 0.2
    assert not all(0.8 < h.var().item() < 1.2 for h in torch_gain)


def train_small_mlp(scheme: str, activation: str, seed: int = 0, steps: int = 20) -> list[nn.Linear]:
    """20 SGD steps (lr 0.5, cross-entropy) of a depth-2, width-16 MLP on 64 random samples with 10 classes."""
    torch.manual_seed(seed)
    act = Activation(activation)
    net = MLP((20,), 10, depth=2, width=16, activation=act)
    WeightInit(scheme)(net, act)
    x, y = torch.randn(64, 20), torch.randint(0, 10, (64,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return [layer for layer in net.layers if isinstance(layer, nn.Linear)]


def row_spread(weight: Tensor) -> float:
    """Largest difference between any row (one unit's incoming weights) and the first row."""
    return (weight - weight[:1]).abs().max().item()


def test_zero_init_leaves_every_hidden_unit_identical_after_training() -> None:
    # Sigmoid(0) = 0.5, so gradients flow and the weights move (first layer by >= 1e-5 over 30 seeds), but every unit
    # of a layer gets the same gradient: the rows stay equal (measured: exactly 0 difference).
    *hidden, output = train_small_mlp("zeros", "sigmoid")
    for layer in hidden:
        size = layer.weight.abs().max().item()
        assert size > 1e-6, "zero-initialised weights did not move"
        assert row_spread(layer.weight) <= 1e-6 * size
        assert row_spread(layer.bias[:, None]) <= 1e-6 * max(layer.bias.abs().max().item(), 1e-12)
    assert row_spread(output.weight.T) <= 1e-6 * output.weight.abs().max().item()  # equal outgoing weights too
    # Small random weights break the symmetry: rows differ by ~0.04 (measured 0.038 to 0.054 over 5 seeds).
    *hidden, _ = train_small_mlp("small_random", "sigmoid")
    assert all(row_spread(layer.weight) > 0.01 for layer in hidden)
    # With tanh, tanh(0) = 0 makes zero init a fixed point: the hidden weights never leave 0.
    *hidden, _ = train_small_mlp("zeros", "tanh")
    assert all(torch.equal(layer.weight, torch.zeros_like(layer.weight)) for layer in hidden)


def collapsed_linear_map(net: MLP) -> tuple[Tensor, Tensor]:
    """(W, b) of the one affine map W x + b that the stack of Linears computes when nothing lies between them."""
    weight, bias = None, None
    for layer in (m for m in net.layers if isinstance(m, nn.Linear)):
        weight = layer.weight if weight is None else layer.weight @ weight
        bias = layer.bias if bias is None else layer.weight @ bias + layer.bias
    return weight, bias


def test_linear_activation_collapses_deep_net_to_one_linear_map() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 32, dtype=torch.float64)
    linear = MLP((32,), 5, depth=6, width=64, activation=nn.Identity).double()  # torch's default init, nonzero biases
    weight, bias = collapsed_linear_map(linear)
    with torch.no_grad():
        assert torch.allclose(linear(x), x @ weight.T + bias, rtol=0, atol=1e-10)
        # Float64 error measured 1.5e-16. The same check fails with tanh in between (>= 0.024 over 30 seeds).
        curved = MLP((32,), 5, depth=6, width=64, activation=nn.Tanh).double()
        weight, bias = collapsed_linear_map(curved)
        assert (curved(x) - (x @ weight.T + bias)).abs().max() > 1e-3
