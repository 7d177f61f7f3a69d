"""L1 / L2 / elastic-net penalties equal their formulas and leave biases and normalisation parameters out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.activations.maxout import MaxoutNorm2d
from trainlab.regularizers.penalties import L1, ElasticNet, WeightPenalty, penalized_parameters


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.PReLU(), MaxoutNorm2d(2), nn.Flatten(), nn.LazyLinear(3)
    )


def weights(net: nn.Module) -> list[torch.Tensor]:
    return [net[0].weight, net[5].weight]


@pytest.fixture
def net():
    net = small_net()
    net(torch.zeros(1, 1, 5, 5))  # materialise the lazy layer
    return net


def test_only_layer_weights_are_penalized_by_default(net):
    assert {id(p) for p in penalized_parameters(net)} == {id(w) for w in weights(net)}


def test_biases_and_norms_can_be_included(net):
    with_bias = penalized_parameters(net, include_bias=True)
    assert {id(p) for p in with_bias} == {id(net[0].weight), id(net[0].bias), id(net[5].weight), id(net[5].bias)}
    everything = penalized_parameters(net, include_bias=True, include_norm=True)
    assert len(everything) == len(list(net.parameters()))


def test_l2_is_lambda_times_sum_of_squares(net):
    expected = 0.3 * sum((w**2).sum() for w in weights(net))
    assert WeightPenalty(l2=0.3)(net).item() == pytest.approx(expected.item(), rel=1e-6)


def test_l1_is_lambda_times_sum_of_absolute_values(net):
    expected = 0.2 * sum(w.abs().sum() for w in weights(net))
    assert WeightPenalty(l1=0.2)(net).item() == pytest.approx(expected.item(), rel=1e-6)


def test_elastic_net_is_the_sum_of_both(net):
    both = WeightPenalty(l1=0.2, l2=0.3)(net).item()
    assert both == pytest.approx(WeightPenalty(l1=0.2)(net).item() + WeightPenalty(l2=0.3)(net).item(), rel=1e-6)


def test_l2_gradient_is_2_lambda_w_like_sgd_weight_decay_of_2_lambda(net):
    WeightPenalty(l2=0.05)(net).backward()
    w = net[0].weight
    assert torch.allclose(w.grad, 2 * 0.05 * w.detach())
    assert net[0].bias.grad is None  # the bias got no gradient from the penalty


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match=r"l2=-0\.1: L2 penalty weight must be a number >= 0$"):
        WeightPenalty(l2=-0.1)
    with pytest.raises(ValueError, match=r"weight=-1e-05: L1 penalty weight must be a number >= 0$"):
        L1(weight=-1e-5)
    with pytest.raises(ValueError, match=r"l2_weight=-1: elastic net's L2 weight must be a number >= 0$"):
        ElasticNet(l2_weight=-1)
