"""Stochastic depth (Huang et al., ECCV 2016): the linear-decay rule, per-mini-batch block dropping, test-time scaling.

Statistical checks use a fixed seed, so they are deterministic; their tolerances are 5 standard errors, so a
correct block passes them for (almost) any seed while a block that keeps 1 - p instead of p fails by many.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import Tensor, nn

from trainlab.models.resnet import PreActBlock, ResNet
from trainlab.regularizers.stochastic_depth import LinearDecay, StochasticDepth, survival_probabilities

Z = 5.0  # tolerance in standard errors


class CountingLinear(nn.Linear):
    """A Linear that counts how often it is called."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return super().forward(x)


def counting_block(survival: float) -> tuple[StochasticDepth, Tensor, Tensor]:
    """A StochasticDepth block with a float64 counting branch, an input and a shortcut."""
    torch.manual_seed(0)
    sd = StochasticDepth(CountingLinear(4, 4).double(), survival)
    return sd, torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)


def test_survival_probabilities_decay_linearly_from_one_to_p_L():
    probs = survival_probabilities(9, p_L=0.5)
    expected = [1.0 - (block / 9) * 0.5 for block in range(1, 10)]
    assert probs == pytest.approx(expected, abs=1e-12)
    assert probs[0] == pytest.approx(1.0 - 1.0 / 18.0, abs=1e-12)
    assert probs[-1] == pytest.approx(0.5, abs=1e-12)
    steps = [a - b for a, b in zip(probs[:-1], probs[1:], strict=True)]
    assert steps == pytest.approx([1.0 / 18.0] * 8, abs=1e-12)  # evenly spaced
    assert survival_probabilities(5, p_L=1.0) == [1.0] * 5


@pytest.mark.parametrize("p_L", [0.0, 1.5, -0.2])
def test_survival_probabilities_reject_p_L_outside_zero_one(p_L: float):
    message = f"p_L={p_L}: survival probability of the last block must be a number in (0, 1]"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        survival_probabilities(9, p_L=p_L)
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        LinearDecay(p_L=p_L)


def test_training_keeps_the_branch_in_a_fraction_p_of_mini_batches_and_skips_it_otherwise():
    p, n = 0.7, 4000
    sd, x, shortcut = counting_block(p)
    sd.train()
    torch.manual_seed(1)
    kept = 0
    for _ in range(n):
        calls = sd.branch.calls
        out = sd(x, shortcut)
        if sd.branch.calls == calls:  # dropped: the branch is not computed and the shortcut comes back exactly
            assert torch.equal(out, shortcut)
        else:
            assert sd.branch.calls == calls + 1
            kept += 1
            assert torch.allclose(out, shortcut + sd.branch(x), atol=1e-12)
            sd.branch.calls -= 1  # do not count the check's own call
    assert abs(kept / n - p) < Z * math.sqrt(p * (1 - p) / n)
    assert sd.branch.calls == kept


def test_eval_is_deterministic_and_scales_the_branch_by_p():
    sd, x, shortcut = counting_block(0.6)
    sd.eval()
    with torch.no_grad():
        first, second = sd(x, shortcut), sd(x, shortcut)
        expected = shortcut + 0.6 * sd.branch(x)
    assert torch.equal(first, second)
    assert torch.allclose(first, expected, rtol=0, atol=1e-12)


def test_average_training_output_equals_the_eval_output():
    p, n = 0.6, 4000
    sd, x, shortcut = counting_block(p)
    with torch.no_grad():
        sd.eval()
        eval_out = sd(x, shortcut)
        sd.train()
        torch.manual_seed(2)
        mean = sum(sd(x, shortcut) for _ in range(n)) / n
        branch = sd.branch(x)
    tolerance = Z * math.sqrt(p * (1 - p) / n) * branch.abs()  # out = shortcut + B branch, B ~ Bernoulli(p)
    assert torch.all((mean - eval_out).abs() <= tolerance)
    assert not torch.allclose(eval_out, shortcut + branch)  # the test-time scaling matters at this p


def resnet_survivals(model: ResNet) -> list[float]:
    return [m.residual.survival for m in model.modules() if isinstance(m, PreActBlock)]


def test_resnet_blocks_follow_the_linear_rule_over_all_3n_blocks():
    model = ResNet((3, 8, 8), 10, depth=20, width=4, stochastic_depth=LinearDecay(0.5))
    assert resnet_survivals(model) == pytest.approx([1.0 - (block / 9) * 0.5 for block in range(1, 10)], abs=1e-12)
    plain = ResNet((3, 8, 8), 10, depth=20, width=4)
    assert resnet_survivals(plain) == [1.0] * 9


def test_resnet_with_stochastic_depth_is_deterministic_in_eval_and_random_in_training():
    torch.manual_seed(0)
    model = ResNet((3, 8, 8), 10, depth=14, width=4, stochastic_depth=LinearDecay(0.2))
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        model.train()
        outs = [model(x) for _ in range(8)]  # 6 droppable blocks: 8 identical draws has chance < 1e-6
        model.eval()
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    assert any(not torch.allclose(outs[0], out) for out in outs[1:])
