"""Data preprocessing, selected with ``preprocess=<method>`` (configs/preprocess/<method>.yaml).

Statistics are fitted once, on the training split only, before the first training step, and stored as buffers of
this module, so every checkpoint carries them and ``trainlab-eval`` / prediction reuse them unchanged. Input
images are in [0, 1] (``none`` stops there). With X the training images flattened to D = C*H*W features and
mu their mean:

| method | output | note |
|---|---|---|
| none | x | |
| zero_center | x - mu | ``mode=channel``: one mean per channel (VGG); ``mode=image``: the mean image (AlexNet) |
| normalize | (x - mu) / sigma | sigma: the training set's std per channel (or per pixel with ``mode=image``) |
| pca | (x - mu) U_k | the top-k principal components (``components``): a k-vector, for the MLP |
| pca_whiten | (x - mu) U_k diag(1 / sqrt(S_k + eps)) | decorrelated, unit variance along every component |
| zca_whiten | (x - mu) U diag(1 / sqrt(S + eps)) U^T | whitened but back in pixel space (an image again) |

On vectors (tabular data, ``input_shape`` ``[D]``: one value per feature, no channels or pixels) zero_center and
normalize work per feature: mu and sigma are the training set's mean and std of each feature (over dim 0), in
either ``mode``.

U, S: eigenvectors and eigenvalues of the training covariance (X - mu)^T (X - mu) / N. ``eps`` keeps directions
with (almost) no variance from being blown up; the covariance of whitened training data is
U diag(S / (S + eps)) U^T, the identity up to eps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal, get_args

import torch
from torch import Tensor, nn

from trainlab.settings import Setting, checked

Method = Literal["none", "zero_center", "normalize", "pca", "pca_whiten", "zca_whiten"]
METHODS: tuple[str, ...] = get_args(Method)


class Preprocess(nn.Module):
    """Args:
    method: one of :data:`METHODS`.
    input_shape: ``(C, H, W)`` of the images, or ``(D,)`` of vectors (statistics per feature).
    mode: ``channel`` or ``image`` statistics for zero_center / normalize.
    components: k for pca / pca_whiten (``None``: all D).
    eps: added to the eigenvalues before whitening.
    """

    @checked
    def __init__(
        self,
        method: Annotated[Method, Setting("the preprocessing method")] = "normalize",
        input_shape: Sequence[int] = (1, 8, 8),
        mode: Annotated[Literal["channel", "image"], Setting("what the statistics are taken over")] = "channel",
        components: Annotated[int, Setting("PCA components kept", low=1)] | None = None,
        eps: Annotated[float, Setting("whitening's regulariser", low=0)] = 1e-2,
    ) -> None:
        super().__init__()
        self.method, self.mode, self.eps = method, mode, eps
        self.input_shape = tuple(input_shape)
        dims = math.prod(self.input_shape)
        if components is not None and components > dims:  # the range is declared; the bound by the data is here
            raise ValueError(f"preprocess.components={components} must be between 1 and {dims} (= C*H*W)")
        self.components = components or dims
        #: images [C, H, W] get statistics per channel (mode=channel) or per pixel; anything else (vectors of
        #: features) per feature
        self.per_channel = mode == "channel" and len(self.input_shape) == 3
        stat_shape = (self.input_shape[0], 1, 1) if self.per_channel else self.input_shape
        if method in ("zero_center", "normalize"):
            self.register_buffer("mean", torch.zeros(stat_shape))
            self.register_buffer("std", torch.ones(stat_shape))
        elif method in ("pca", "pca_whiten"):
            self.register_buffer("mean", torch.zeros(dims))
            self.register_buffer("projection", torch.zeros(dims, self.components))
        elif method == "zca_whiten":
            self.register_buffer("mean", torch.zeros(dims))
            self.register_buffer("projection", torch.zeros(dims, dims))
        self.register_buffer("fitted", torch.tensor(method == "none"))

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.components,) if self.method in ("pca", "pca_whiten") else self.input_shape

    @torch.no_grad()
    def fit(self, x: Tensor) -> Preprocess:
        """Fit the statistics on training images ``x`` [N, C, H, W] or vectors [N, D] (in float64, stored in
        float32)."""
        if self.method == "none":
            return self
        x = x.double()
        if self.method in ("zero_center", "normalize"):
            dims = (0, 2, 3) if self.per_channel else (0,)
            self.mean.copy_(x.mean(dim=dims, keepdim=self.per_channel).reshape(self.mean.shape))
            if self.method == "normalize":
                std = x.std(dim=dims, keepdim=self.per_channel).reshape(self.std.shape)
                self.std.copy_(std.clamp_min(1e-8))  # a constant pixel (digits' border) stays 0, not NaN
        else:
            flat = x.flatten(1)
            mean = flat.mean(0)
            centred = flat - mean
            cov = centred.T @ centred / len(flat)
            eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
            eigvals, eigvecs = eigvals.flip(0).clamp_min(0), eigvecs.flip(1)
            if self.method == "pca":
                projection = eigvecs[:, : self.components]
            elif self.method == "pca_whiten":
                projection = eigvecs[:, : self.components] / (eigvals[: self.components] + self.eps).sqrt()
            else:
                projection = (eigvecs / (eigvals + self.eps).sqrt()) @ eigvecs.T
            self.mean.copy_(mean)
            self.projection.copy_(projection)
        self.fitted.fill_(True)
        return self

    def forward(self, x: Tensor) -> Tensor:
        if self.method == "none":
            return x
        if self.method == "zero_center":
            return x - self.mean
        if self.method == "normalize":
            return (x - self.mean) / self.std
        out = (x.flatten(1) - self.mean) @ self.projection
        return out if self.method != "zca_whiten" else out.view(-1, *self.input_shape)

    def extra_repr(self) -> str:
        return f"method={self.method}, mode={self.mode}, output_shape={self.output_shape}"
