"""Preprocessing statistics: fitted on the training split only, and the output has the promised moments."""

from __future__ import annotations

import re

import pytest
import torch

from trainlab import build
from trainlab.preprocess import Preprocess
from trainlab.train import train


def correlated_images(n: int = 4000, shape=(3, 4, 4), seed: int = 0) -> torch.Tensor:
    """Images whose pixels are strongly correlated, with a full-rank covariance and non-zero mean."""
    g = torch.Generator().manual_seed(seed)
    d = torch.Size(shape).numel()
    mix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5 + torch.eye(d, dtype=torch.float64)
    z = torch.randn(n, d, generator=g, dtype=torch.float64) @ mix
    return (0.5 + 0.1 * z).float().view(n, *shape)


def covariance(x: torch.Tensor) -> torch.Tensor:
    flat = x.double().flatten(1)
    centred = flat - flat.mean(0)
    return centred.T @ centred / len(flat)


def test_normalize_gives_zero_mean_unit_std_per_channel():
    x = correlated_images()
    x[:, 1] = 3 * x[:, 1] + 1  # channels on different scales
    out = Preprocess("normalize", input_shape=(3, 4, 4)).fit(x)(x).double()
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4)


def test_normalize_image_mode_uses_per_pixel_statistics():
    x = correlated_images()
    out = Preprocess("normalize", input_shape=(3, 4, 4), mode="image").fit(x)(x).double()
    assert torch.allclose(out.mean(0), torch.zeros(3, 4, 4, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(out.std(0), torch.ones(3, 4, 4, dtype=torch.float64), atol=1e-4)


def test_zero_center_subtracts_the_mean_and_keeps_the_scale():
    x = correlated_images()
    channel = Preprocess("zero_center", input_shape=(3, 4, 4)).fit(x)
    out = channel(x).double()
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), x.double().std(dim=(0, 2, 3)), rtol=1e-5)
    image = Preprocess("zero_center", input_shape=(3, 4, 4), mode="image").fit(x)
    assert torch.allclose(image.mean, x.mean(0), atol=1e-6)  # the mean image (AlexNet style)


def test_zca_whitening_makes_the_training_covariance_the_identity():
    x = correlated_images()
    assert (
        covariance(x).diagonal().min() > 0 and (covariance(x) - torch.diag(covariance(x).diagonal())).abs().max() > 1e-3
    )
    zca = Preprocess("zca_whiten", input_shape=(3, 4, 4), eps=1e-8).fit(x)
    out = zca(x)
    assert out.shape == x.shape  # still an image
    assert torch.allclose(covariance(out), torch.eye(48, dtype=torch.float64), atol=2e-3)


def test_whitening_with_eps_shrinks_each_direction_by_s_over_s_plus_eps():
    x = correlated_images()
    eps = 0.01
    s, u = torch.linalg.eigh(covariance(x))
    expected = u @ torch.diag(s / (s + eps)) @ u.T
    out = Preprocess("zca_whiten", input_shape=(3, 4, 4), eps=eps).fit(x)(x)
    assert torch.allclose(covariance(out), expected, atol=2e-3)


def test_pca_whiten_gives_k_uncorrelated_unit_variance_components():
    x = correlated_images()
    out = Preprocess("pca_whiten", input_shape=(3, 4, 4), components=10, eps=1e-8).fit(x)(x)
    assert out.shape == (len(x), 10)
    assert torch.allclose(covariance(out), torch.eye(10, dtype=torch.float64), atol=2e-3)


def test_pca_keeps_the_top_components_in_order_of_variance():
    x = correlated_images()
    eigvals = torch.linalg.eigvalsh(covariance(x)).flip(0)
    pca = Preprocess("pca", input_shape=(3, 4, 4), components=5).fit(x)
    out = pca(x).double()
    assert pca.output_shape == (5,)
    assert torch.allclose(out.var(0, unbiased=False), eigvals[:5], rtol=1e-3)
    # the reconstruction error is the variance of the discarded components
    flat = x.double().flatten(1)
    recon = out @ pca.projection.double().T + pca.mean.double()
    assert ((flat - recon) ** 2).sum(1).mean().item() == pytest.approx(eigvals[5:].sum().item(), rel=1e-3)


def test_statistics_come_from_the_training_split_only(make_cfg):
    metrics = train(make_cfg("trainer.max_epochs=1", "logger=none", "test=false"))
    state = torch.load(metrics["last_ckpt"], weights_only=True)["state_dict"]
    dm = build.build_datamodule(make_cfg(subdir="data"))
    dm.setup()
    train_x, val_x = dm.splits["train"][0], dm.splits["val"][0]
    assert state["preprocess.mean"].item() == pytest.approx(train_x.double().mean().item(), abs=1e-6)
    assert state["preprocess.std"].item() == pytest.approx(train_x.double().std().item(), abs=1e-6)
    everything = torch.cat([train_x, val_x]).double()
    assert abs(state["preprocess.mean"].item() - everything.mean().item()) > 1e-4  # val would have moved it
    assert bool(state["preprocess.fitted"])


def test_pca_feeds_only_the_mlp(make_cfg):
    module = build.build_module(make_cfg("preprocess=pca", "preprocess.components=16"))
    assert module.net.layers[1].in_features == 16
    with pytest.raises(ValueError, match="preprocess=pca turns images into vectors of 16.*model=cnn cannot"):
        build.build_module(make_cfg("preprocess=pca", "preprocess.components=16", "model=cnn"))


def test_bad_settings_are_refused():
    methods = "none, zero_center, normalize, pca, pca_whiten, zca_whiten"
    message = f"method='whiten': the preprocessing method must be one of {methods}"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        Preprocess("whiten")
    with pytest.raises(ValueError, match=re.escape("preprocess.components=100 must be between 1 and 64")):
        Preprocess("pca", input_shape=(1, 8, 8), components=100)  # the bound set by the data: checked by hand
    with pytest.raises(ValueError, match=r"^components=0: PCA components kept must be an integer >= 1$"):
        Preprocess("pca", input_shape=(1, 8, 8), components=0)
    message = "mode='pixel': what the statistics are taken over must be one of channel, image"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        Preprocess("normalize", mode="pixel")
    with pytest.raises(ValueError, match=r"^eps=-0\.1: whitening's regulariser must be a number >= 0$"):
        Preprocess("zca_whiten", eps=-0.1)


# ---- vectors (tabular data): statistics per feature ----
@pytest.mark.parametrize("mode", ["channel", "image"])
def test_normalize_on_vectors_gives_each_feature_mean_0_and_std_1_on_the_training_split(make_cfg, mode):
    """``data=synthetic data.input_shape=[3]`` with the default ``preprocess=normalize``: per feature (over dim 0)."""
    cfg = make_cfg("data=synthetic", "data.input_shape=[3]", "data.train_size=500", f"preprocess.mode={mode}")
    datamodule = build.build_datamodule(cfg)
    module = build.build_module(cfg)
    train_x = datamodule.train_images()
    assert train_x.shape == (500, 3)
    module.preprocess.fit(train_x)
    assert module.preprocess.mean.shape == module.preprocess.std.shape == (3,)
    out = module.preprocess(train_x).double()
    assert out.mean(0).abs().max().item() < 1e-5  # each feature: mean 0 ...
    assert (out.std(0) - 1).abs().max().item() < 1e-5  # ... and std 1, on the training split
    x = train_x.double()
    assert torch.allclose(module.preprocess.mean.double(), x.mean(0), rtol=0, atol=1e-6)
    assert torch.allclose(module.preprocess.std.double(), x.std(0), rtol=0, atol=1e-6)


def test_zero_center_and_normalize_on_vectors_with_different_scales_per_feature():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 4, generator=g) * torch.tensor([1.0, 10.0, 0.1, 3.0]) + torch.tensor([5.0, -2.0, 0.0, 1.0])
    centred = Preprocess("zero_center", input_shape=(4,)).fit(x)(x).double()
    assert centred.mean(0).abs().max().item() < 1e-5
    assert torch.allclose(centred.std(0), x.double().std(0), rtol=1e-5, atol=0)  # scales untouched
    normalized = Preprocess("normalize", input_shape=(4,)).fit(x)(x).double()
    assert normalized.mean(0).abs().max().item() < 1e-5 and (normalized.std(0) - 1).abs().max().item() < 1e-5
    test = torch.randn(100, 4, generator=g)
    fitted = Preprocess("normalize", input_shape=(4,)).fit(x)
    expected = (test.double() - x.double().mean(0)) / x.double().std(0)
    assert torch.allclose(fitted(test).double(), expected, rtol=0, atol=1e-4)  # training statistics, reused
