"""Fractional max-pooling (Graham 2014): region boundaries, pooled values, randomness, determinism and gradients."""

from __future__ import annotations

import math
import re

import pytest
import torch

from trainlab.regularizers.fractional_pool import (
    FractionalMaxPool2d,
    FractionalPooling,
    _pool,
    fractional_intervals,
    fractional_output_size,
    set_pass_index,
)

KINDS = ["random", "pseudo_random"]


def regions(bounds: torch.Tensor, n_in: int, overlapping: bool) -> list[list[int]]:
    """The positions of each region, written out from the paper's definition."""
    a = bounds.tolist()
    last = (lambda i: min(a[i], n_in - 1)) if overlapping else (lambda i: a[i] - 1)
    return [list(range(a[i - 1], last(i) + 1)) for i in range(1, len(a))]


def slow_pool(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, overlapping: bool) -> torch.Tensor:
    """Reference: explicit loops over regions, max over each rectangle."""
    row_regions, col_regions = regions(rows, x.shape[2], overlapping), regions(cols, x.shape[3], overlapping)
    out = x.new_empty(x.shape[0], x.shape[1], len(row_regions), len(col_regions))
    for i, ri in enumerate(row_regions):
        for j, cj in enumerate(col_regions):
            out[:, :, i, j] = x[:, :, ri][:, :, :, cj].amax(dim=(2, 3))
    return out


def max_counts(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, overlapping: bool) -> torch.Tensor:
    """How many regions each input element is the (unique) maximum of."""
    counts = torch.zeros_like(x)
    for ri in regions(rows, x.shape[2], overlapping):
        for cj in regions(cols, x.shape[3], overlapping):
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    block = x[n, c][ri][:, cj]
                    i, j = divmod(int(block.argmax()), block.shape[1])
                    counts[n, c, ri[i], cj[j]] += 1
    return counts


def distinct_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(math.prod(shape), generator=g).float().reshape(shape)


@pytest.mark.parametrize("size", [8, 28, 32, 13, 2])
@pytest.mark.parametrize("ratio", [0.5, 0.7071, 0.8, 0.99])
def test_output_size_is_floor_of_input_times_ratio(size: int, ratio: float) -> None:
    x = torch.randn(2, 3, size, size + 3)
    out = FractionalMaxPool2d(ratio=ratio)(x)
    expected = [max(math.floor(n * ratio), math.ceil(n / 2)) for n in (size, size + 3)]
    assert list(out.shape) == [2, 3, *expected]
    # floor(n * ratio) except where 1-or-2 increments cannot cover n (odd n, ratio near 0.5): then ceil(n / 2)
    if size % 2 == 0:
        assert out.shape[2] == math.floor(size * ratio)


def test_output_size_rounds_up_to_half_for_odd_sizes_at_ratio_one_half() -> None:
    assert fractional_output_size(13, 0.5) == 7
    assert fractional_output_size(13, 0.55) == 7
    assert fractional_output_size(13, 0.6) == 7
    assert fractional_output_size(13, 0.7) == 9
    assert fractional_output_size(32, 2**-0.5) == 22


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n_in", "n_out"), [(32, 22), (28, 19), (13, 7), (8, 7), (10, 5), (2, 1), (5, 4)])
def test_boundaries_run_from_zero_to_n_in_in_steps_of_one_or_two(kind: str, n_in: int, n_out: int) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        a = fractional_intervals(n_in, n_out, kind, g)
        assert a.dtype == torch.int64 and a.shape == (n_out + 1,)
        assert a[0] == 0 and a[-1] == n_in
        steps = a.diff()
        assert set(steps.tolist()) <= {1, 2}
        assert int((steps == 2).sum()) == n_in - n_out


def test_random_intervals_put_a_two_at_each_position_with_equal_probability() -> None:
    n_in, n_out, draws = 28, 19, 4000
    g = torch.Generator().manual_seed(2)
    twos = torch.stack([fractional_intervals(n_in, n_out, "random", g).diff() == 2 for _ in range(draws)])
    p = (n_in - n_out) / n_out
    tolerance = 5 * math.sqrt(draws * p * (1 - p))
    assert (twos.sum(0).double() - draws * p).abs().max() < tolerance
    # distinct draws give distinct sequences (9 twos among 19 places: 92378 possibilities)
    assert not torch.equal(twos[0], twos[1])
    assert len({tuple(t.tolist()) for t in twos[:100]}) > 90


def test_pseudo_random_intervals_follow_ceil_of_alpha_times_i_plus_u() -> None:
    n_in, n_out = 25, 18
    g = torch.Generator().manual_seed(3)
    a = fractional_intervals(n_in, n_out, "pseudo_random", g)
    u = float(torch.rand((), generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    alpha = n_in / n_out
    expected = [math.ceil(alpha * (i + u)) - math.ceil(alpha * u) for i in range(n_out + 1)]
    assert a.tolist() == expected


def test_unknown_interval_kind_or_impossible_size_raises() -> None:
    with pytest.raises(ValueError, match="random, pseudo_random"):
        fractional_intervals(10, 7, "uniform", None)
    with pytest.raises(ValueError, match="cannot pool 13"):
        fractional_intervals(13, 6, "random", None)


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize(("h", "w"), [(8, 8), (13, 10), (28, 28)])
def test_pool_matches_slow_reference_on_the_same_boundaries(overlapping: bool, h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(5)
    for kind in KINDS:
        rows = fractional_intervals(h, fractional_output_size(h, 0.7), kind, g)
        cols = fractional_intervals(w, fractional_output_size(w, 0.7), kind, g)
        assert torch.equal(_pool(x, rows, cols, overlapping), slow_pool(x, rows, cols, overlapping))


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_module_forward_matches_slow_reference_with_rows_drawn_before_columns(overlapping: bool, kind: str) -> None:
    x = torch.randn(2, 2, 17, 12)
    module = FractionalMaxPool2d(ratio=0.75, intervals=kind, overlapping=overlapping)
    torch.manual_seed(6)
    out = module(x)
    torch.manual_seed(6)
    rows = fractional_intervals(17, fractional_output_size(17, 0.75), kind, None)
    cols = fractional_intervals(12, fractional_output_size(12, 0.75), kind, None)
    assert torch.equal(out, slow_pool(x, rows, cols, overlapping))


@pytest.mark.parametrize("kind", KINDS)
def test_eval_mode_is_deterministic_and_pass_index_changes_the_regions(kind: str) -> None:
    x = torch.randn(2, 3, 28, 28)
    module = FractionalMaxPool2d(intervals=kind, test_samples=3).eval()
    torch.manual_seed(7)
    first = module(x)
    torch.manual_seed(8)  # the global RNG has no say in eval mode
    assert torch.equal(module(x), first)
    rows, cols = module.boundaries(28, 28)
    assert torch.equal(first, slow_pool(x, rows, cols, False))
    set_pass_index(torch.nn.Sequential(torch.nn.Identity(), module), 1)
    assert module.pass_index == 1
    second = module(x)
    assert torch.equal(module(x), second)
    assert not torch.equal(second, first)


@pytest.mark.parametrize("kind", KINDS)
def test_training_mode_draws_new_regions_at_each_call(kind: str) -> None:
    torch.manual_seed(9)
    x = torch.randn(2, 3, 28, 28)
    module = FractionalMaxPool2d(intervals=kind).train()
    outs = [module(x) for _ in range(5)]
    assert sum(not torch.equal(outs[0], o) for o in outs[1:]) >= 3


@pytest.mark.parametrize("ratio", [0.49, 1.0, 1.5, 0.0, -0.7])
def test_ratio_out_of_range_raises_with_key_value_and_range(ratio: float) -> None:
    message = f"ratio={ratio}: fractional pooling's output/input ratio must be a number in [0.5, 1)"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        FractionalMaxPool2d(ratio=ratio)
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        FractionalPooling(ratio=ratio)


def test_unknown_interval_kind_and_bad_test_samples_raise_with_key_name() -> None:
    message = "intervals='uniform': fractional pooling's intervals must be one of random, pseudo_random"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        FractionalMaxPool2d(intervals="uniform")
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match=rf"test_samples={bad}: test passes averaged must be an integer >= 1$"):
            FractionalMaxPool2d(test_samples=bad)


@pytest.mark.parametrize("overlapping", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_gradient_reaches_only_the_maximum_of_each_region(overlapping: bool, kind: str) -> None:
    x = distinct_input((2, 2, 11, 9)).requires_grad_()
    module = FractionalMaxPool2d(ratio=0.7, intervals=kind, overlapping=overlapping).eval()
    out = module(x)
    out.sum().backward()
    assert float(x.grad.sum()) == out.numel()
    rows, cols = module.boundaries(11, 9)
    assert torch.equal(x.grad, max_counts(x.detach(), rows, cols, overlapping))
