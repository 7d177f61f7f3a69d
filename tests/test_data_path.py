"""The data path in training: augmentation only in the training step, on the batch; preprocessing before cutout;
the DataLoader path as an alternative; bad combinations refused before training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab import build
from trainlab.train import train


class Recorder(nn.Module):
    """A network that remembers its inputs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def module_with_recorder(make_cfg, *overrides):
    module = build.build_module(make_cfg(*overrides))
    module.net = Recorder(module.net)
    return module


def test_augmentation_runs_in_training_steps_only(make_cfg):
    module = module_with_recorder(make_cfg, "augment=[hflip]", "augment.hflip.p=1.0", "preprocess=none")
    x, y = torch.rand(4, 1, 8, 8), torch.arange(4)
    module.train()
    module.training_step((x, y), 0)
    assert torch.equal(module.net.seen[-1], x.flip(-1))  # p=1: every image flipped
    module.eval()
    module.validation_step((x, y), 0)
    assert torch.equal(module.net.seen[-1], x)  # evaluation sees the images as they are


def test_cutout_comes_after_preprocessing_so_it_zeroes_to_the_mean(make_cfg):
    module = module_with_recorder(make_cfg, "augment=[cutout]", "augment.cutout.size=4")
    module.preprocess.fit(torch.rand(100, 1, 8, 8) * 0.2 + 0.5)
    module.train()
    x = torch.full((64, 1, 8, 8), 0.6)
    module.training_step((x, torch.zeros(64, dtype=torch.long)), 0)
    seen = module.net.seen[-1]
    normalized = module.preprocess(x)
    masked = seen == 0
    assert masked.any() and not normalized.eq(0).any()  # zeros can only come from cutout
    assert torch.equal(seen[~masked], normalized[~masked])


def test_color_jitter_on_greyscale_is_refused_before_training(make_cfg):
    with pytest.raises(ValueError, match="augment=color_jitter needs colour images"):
        train(make_cfg("augment=[color_jitter]"))


def test_cutout_after_pca_is_refused(make_cfg):
    with pytest.raises(ValueError, match=r"augment=\[cutout\] needs images after preprocessing"):
        build.build_module(make_cfg("augment=[cutout]", "preprocess=pca"))


def test_in_memory_training_keeps_the_data_on_the_trainer_device(make_cfg):
    cfg = make_cfg("trainer.max_epochs=1", "logger=none", "test=false", "augment=[crop,hflip,cutout]")
    metrics = train(cfg)
    assert metrics["steps"] == 20


def test_the_dataloader_path_trains_with_per_sample_transforms(make_cfg):
    cfg = make_cfg("data.loader=dataloader", "augment=[hflip,crop]", "trainer.max_epochs=1", "logger=none")
    dm = build.build_datamodule(cfg)
    names = [type(t).__name__ for t in dm.train_transform.transforms]
    assert names == ["RandomHorizontalFlip", "RandomCrop"]
    module = build.build_module(cfg)
    assert len(module.techniques.pixels) == 0  # the workers augment, not the training step
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch[0].shape == (64, 1, 8, 8)
    metrics = train(cfg)
    assert metrics["steps"] == 20 and 0.0 <= float(metrics["test/acc"]) <= 1.0


def test_unknown_loader_is_refused(make_cfg):
    with pytest.raises(
        ValueError, match=r"data\.loader='gpu': .*how batches are made must be one of memory, dataloader"
    ):
        build.build_datamodule(make_cfg("data.loader=gpu"))
