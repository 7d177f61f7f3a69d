"""The digits data module and the in-memory loader: splits, shuffling, sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.data.digits import DigitsDataModule
from trainlab.data.loader import TensorLoader


def test_digits_splits_are_disjoint_stratified_and_fixed():
    dm = DigitsDataModule()
    dm.setup()
    sizes = {k: len(v[1]) for k, v in dm.splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == 270 and sizes["val"] == 270 and sizes["train"] == 1257
    # disjoint: no image appears in two splits
    flat = {k: {tuple(row) for row in v[0].flatten(1).numpy().round(4)} for k, v in dm.splits.items()}
    total = len(flat["train"]) + len(flat["val"]) + len(flat["test"])
    assert len(flat["train"] | flat["val"] | flat["test"]) == total
    # stratified: each class's share of the test split is within one sample of its share overall
    y_all = torch.cat([v[1] for v in dm.splits.values()])
    share_all = torch.bincount(y_all, minlength=10) / len(y_all)
    counts_test = torch.bincount(dm.splits["test"][1], minlength=10)
    assert torch.all((counts_test - share_all * 270).abs() <= 1.0)
    # the same split every time, whatever the training seed
    torch.manual_seed(123)
    again = DigitsDataModule()
    again.setup()
    assert torch.equal(again.splits["test"][1], dm.splits["test"][1])
    assert torch.equal(again.splits["val"][0], dm.splits["val"][0])


def test_digits_pixels_are_scaled_to_unit_interval():
    dm = DigitsDataModule()
    dm.setup()
    x = dm.splits["train"][0]
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
    assert x.min().item() == 0.0 and x.max().item() == 1.0


def test_loader_batches_cover_every_sample_once_per_epoch():
    x = torch.arange(103)
    loader = TensorLoader(x, batch_size=10, shuffle=True, seed=7)
    batches = [b[0] for b in loader]
    assert len(loader) == len(batches) == 11
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert torch.equal(torch.cat(batches).sort().values, x)


def test_loader_order_is_a_function_of_seed_and_epoch():
    x = torch.arange(50)

    def order(seed, epoch):
        loader = TensorLoader(x, batch_size=50, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return next(iter(loader))[0]

    assert torch.equal(order(1, 0), order(1, 0))  # reproducible
    assert not torch.equal(order(1, 0), order(1, 1))  # a new order every epoch
    assert not torch.equal(order(1, 1), order(2, 0))  # seeds are not shifted epochs
    # Lightning reaches set_epoch through `loader.sampler`
    loader = TensorLoader(x, batch_size=50, shuffle=True, seed=1)
    loader.sampler.set_epoch(3)
    assert torch.equal(next(iter(loader))[0], order(1, 3))


def test_loader_without_shuffle_keeps_order_and_drop_last():
    x, y = torch.arange(25).float(), torch.arange(25)
    loader = TensorLoader(x, y, batch_size=10, drop_last=True)
    assert len(loader) == 2
    xs, ys = zip(*loader, strict=True)
    assert torch.equal(torch.cat(ys), torch.arange(20))


@pytest.mark.parametrize("shuffle", [True, False])
def test_loader_shards_partition_the_data_across_processes(shuffle):
    n, world = 101, 2
    x = torch.arange(n)
    shards = [
        torch.cat([b[0] for b in TensorLoader(x, batch_size=8, shuffle=shuffle, seed=3, rank=r, world_size=world)])
        for r in range(world)
    ]
    joined = torch.cat(shards)
    assert len(set(joined.tolist())) == len(joined)  # no sample in two processes
    if shuffle:  # equal shares (same number of steps on every process), at most world-1 samples left out
        assert len(shards[0]) == len(shards[1]) == n // world
    else:  # evaluation sees every sample exactly once
        assert sorted(joined.tolist()) == list(range(n))


def test_loader_rejects_mismatched_tensors_and_bad_batch_size():
    with pytest.raises(ValueError, match="same first dimension"):
        TensorLoader(torch.zeros(3), torch.zeros(4), batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(torch.zeros(3), batch_size=0)


def test_numpy_seed_sequence_mixing_is_stable():
    # the permutation seed must not depend on the process (no Python hash randomisation)
    assert int(np.random.SeedSequence([1, 0]).generate_state(1)[0]) == int(
        np.random.SeedSequence([1, 0]).generate_state(1)[0]
    )
