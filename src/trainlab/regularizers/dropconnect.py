"""DropConnect: a linear layer whose weights (not activations) are dropped at random, followed by its activation.

Wan, Zeiler, Zhang, LeCun and Fergus, "Regularization of Neural Networks using DropConnect", ICML 2013.

Convention: ``p`` is the probability of DROPPING a weight, as for :class:`torch.nn.Dropout`; a weight is kept
with probability ``q = 1 - p``. (The paper writes ``p`` for the KEEP probability, i.e. our ``q``.)

Training, for each example ``x_n`` of a batch, with a fresh mask ``M_n ~ Bernoulli(q)`` per example and per weight::

    u_n = (M_n * W) x_n + b,        r_n = a(u_n)

The bias is not masked, and there is no ``1/q`` rescaling (the paper's convention: inference uses ``q W``).

Inference, ``inference="mean"``: the cheap mean approximation ``r = a(q W x + b)`` (the rule the paper argues is
poor for non-linear ``a`` and improves on).

Inference, ``inference="gaussian"``: the paper's moment matching (its Algorithm 2). The pre-activation is
approximated by a Gaussian with the moments of the training-time ``u``::

    u ~ N(mean = q W x + b, var = q (1 - q) (W * W)(x * x))

and ``r = (1/S) sum_s a(u_s)`` over ``S = samples`` draws per example and unit. The draws come from a private
:class:`torch.Generator` seeded with :data:`DropConnectLinear.EVAL_SEED` at every eval forward, so evaluation is
deterministic and leaves torch's global RNG untouched.

Cost: training materialises an ``N x out x in`` mask (and a masked weight of the same size) per batch, so memory
grows as ``batch * out * in``; use it on small layers. The gaussian inference holds
``samples x N x out`` pre-activations.

Deviations from the paper: the training mask is drawn with torch's global RNG (seed with ``torch.manual_seed``);
the inference samples use a fixed seed rather than fresh randomness; the activation must be element-wise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from trainlab.settings import Setting, checked
from trainlab.techniques import LayerRegularizer

#: the settings of :class:`DropConnectLinear` and :class:`DropConnect` (``regularizer.dropconnect.*``)
DropProbability = Annotated[float, Setting("probability of zeroing a weight", low=0, high=1, high_open=True)]
Inference = Annotated[Literal["mean", "gaussian"], Setting("DropConnect's inference")]
Samples = Annotated[int, Setting("samples of DropConnect's inference", low=1)]


class DropConnectLinear(nn.Linear):
    """``a(W x + b)`` with DropConnect on ``W`` in training and mean or gaussian inference in eval.

    Args:
        in_features, out_features, bias: as for :class:`torch.nn.Linear`.
        p: drop probability of each weight, ``0 <= p < 1``.
        inference: ``"mean"`` (``a(q W x + b)``) or ``"gaussian"`` (the paper's moment matching).
        samples: Gaussian draws per example and unit for ``inference="gaussian"``, ``>= 1``.
        activation: zero-argument factory of the element-wise non-linearity (e.g. ``nn.ReLU``); None: identity.
    """

    #: seed of the private generator the gaussian inference draws from at each eval forward
    EVAL_SEED = 0

    @checked
    def __init__(
        self,
        in_features: int,
        out_features: int,
        p: DropProbability = 0.5,
        inference: Inference = "mean",
        samples: Samples = 100,
        activation: Callable[[], nn.Module] | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.p = float(p)
        self.inference = inference
        self.samples = int(samples)
        self.activation: nn.Module = activation() if activation is not None else nn.Identity()

    @property
    def q(self) -> float:
        """Keep probability of each weight (the paper's ``p``)."""
        return 1.0 - self.p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"DropConnectLinear expects input [N, {self.in_features}], got {tuple(x.shape)}")
        if self.training:
            return self.activation(self._masked_preactivation(x))
        mean = F.linear(x, self.q * self.weight, self.bias)
        if self.inference == "mean":
            return self.activation(mean)
        return self._gaussian_inference(x, mean)

    def _masked_preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """``u_n = (M_n * W) x_n + b`` with one Bernoulli(q) mask per example, drawn from the global RNG."""
        keep = torch.full((x.shape[0], *self.weight.shape), self.q, device=x.device, dtype=x.dtype)
        mask = torch.bernoulli(keep)
        u = torch.einsum("noi,ni->no", mask * self.weight, x)
        return u if self.bias is None else u + self.bias

    def _gaussian_inference(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """``mean_s a(u_s)``, ``u_s ~ N(q W x + b, q(1-q) (W*W)(x*x))``, from a generator seeded per call."""
        var = self.q * self.p * F.linear(x * x, self.weight * self.weight)
        std = var.clamp_min(torch.finfo(var.dtype).tiny).sqrt()  # clamp: finite gradient where var == 0
        generator = torch.Generator(device=x.device)
        generator.manual_seed(self.EVAL_SEED)
        noise = torch.randn((self.samples, *mean.shape), generator=generator, device=x.device, dtype=x.dtype)
        samples = (mean + std * noise).flatten(0, 1)  # [S * N, out]: the activation sees ordinary 2D batches
        return self.activation(samples).unflatten(0, (self.samples, mean.shape[0])).mean(dim=0)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}, inference={self.inference}, samples={self.samples}"


class DropConnect(LayerRegularizer):
    """``regularizer=[dropconnect]``: networks take it as their ``dropconnect`` argument and call
    ``dropconnect(in_features, out_features, activation)`` for each hidden fully connected layer, which becomes one
    :class:`DropConnectLinear` (the Linear and its activation)."""

    argument = "dropconnect"

    @checked
    def __init__(self, p: DropProbability = 0.5, inference: Inference = "mean", samples: Samples = 100) -> None:
        self.p, self.inference, self.samples = float(p), inference, int(samples)

    def __call__(
        self, in_features: int, out_features: int, activation: Callable[[], nn.Module] | None = None
    ) -> DropConnectLinear:
        return DropConnectLinear(
            in_features, out_features, p=self.p, inference=self.inference, samples=self.samples, activation=activation
        )
