"""The MLP and CNN built from config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.models.cnn import CNN
from trainlab.models.mlp import MLP


def linear_shapes(net: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


def test_mlp_depth_and_width():
    net = MLP(input_shape=(1, 8, 8), num_classes=10, depth=3, width=32)
    assert linear_shapes(net) == [(64, 32), (32, 32), (32, 32), (32, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    assert net(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_mlp_explicit_sizes_override_depth_and_width():
    net = MLP(input_shape=(1, 28, 28), num_classes=10, depth=7, width=3, sizes=[256, 128, 100])
    assert linear_shapes(net) == [(784, 256), (256, 128), (128, 100), (100, 10)]


def test_mlp_without_hidden_layers_is_softmax_regression():
    net = MLP(input_shape=(1, 8, 8), num_classes=10, sizes=[])
    assert linear_shapes(net) == [(64, 10)]


def test_mlp_refuses_sizes_out_of_range():
    with pytest.raises(ValueError, match=r"^depth=0: hidden layers of the MLP must be an integer >= 1$"):
        MLP(input_shape=(1, 8, 8), num_classes=10, depth=0)
    with pytest.raises(ValueError, match=r"^width=0: units per hidden layer must be an integer >= 1$"):
        MLP(input_shape=(1, 8, 8), num_classes=10, width=0)
    with pytest.raises(ValueError, match=r"^model\.sizes=\[4, 0\]: every hidden size must be >= 1$"):
        MLP(input_shape=(1, 8, 8), num_classes=10, sizes=[4, 0])


def test_mlp_takes_the_activation_factory():
    net = MLP(input_shape=(4,), num_classes=2, depth=2, width=3, activation=nn.Tanh)
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 2


@pytest.mark.parametrize("pool, expected_side", [("max", 2), ("avg", 2), ("none", 8)])
def test_cnn_pooling_halves_each_block(pool, expected_side):
    net = CNN(input_shape=(1, 8, 8), num_classes=10, channels=[4, 6], hidden=16, pool=pool)
    assert net.features(torch.zeros(2, 1, 8, 8)).shape == (2, 6, expected_side, expected_side)
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    pools = [m for m in net.features if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert len(pools) == (0 if pool == "none" else 2)


def test_cnn_max_pool_takes_the_maximum():
    net = CNN(input_shape=(1, 4, 4), num_classes=2, channels=[1], pool="max")
    pool = net.features[-1]
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert pool(x).flatten().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_cnn_refuses_unknown_pool_and_over_pooling():
    with pytest.raises(ValueError, match=r"^pool='fractional-ish': the CNN's pooling must be one of max, avg, none$"):
        CNN(input_shape=(1, 8, 8), num_classes=10, pool="fractional-ish")
    with pytest.raises(ValueError, match=r"^hidden=0: units of the CNN's hidden layer must be an integer >= 1$"):
        CNN(input_shape=(1, 8, 8), num_classes=10, hidden=0)
    with pytest.raises(ValueError, match="pools a 8x8 image down to nothing"):
        CNN(input_shape=(1, 8, 8), num_classes=10, channels=[4, 4, 4, 4])
