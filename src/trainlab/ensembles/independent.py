"""Independent ensembles (``ensemble=independent``): K networks with different initial weights, trained together
in one run and averaged at test time (the lecture's model ensemble, about +2%).

Why one run and stacked parameters: K small networks trained one after the other pay K times the per-step
overhead (Python, kernel launches, data loading), which dominates for the small models of this template. Here the
members' parameters are stacked along a new leading dimension (``torch.func.stack_module_state``) and the forward
pass is ``torch.func.vmap`` over that dimension, so K members cost about one forward/backward pass of a K-times
wider network, and all members see the same batches. Each member's loss only reaches its own parameters, so the
members train independently (one optimizer over the stacked tensors is K optimizers: SGD, Adam & co. act
element-wise).

Networks with BatchNorm update their running statistics in place, which vmap cannot batch; for them (or with
``ensemble.vectorize=false``) the members run one after the other in a loop, with the same results.

In training the network returns member logits ``[K, N, C]``; in evaluation the log of the members' mean
probabilities ``[N, C]`` (valid logits for cross-entropy and argmax), and ``member_logits`` gives each member's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from trainlab.ensembles import Ensemble, ensemble_report
from trainlab.settings import Setting, checked


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._NormBase) for m in module.modules())


class IndependentEnsemble(nn.Module):
    def __init__(self, members: Sequence[nn.Module], vectorize: bool = True) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"ensemble.size={len(members)} must be >= 2")
        self.size = len(members)
        self.vectorized = vectorize and not _has_batchnorm(members[0])
        if not self.vectorized:
            self.members = nn.ModuleList(members)
            return
        params, buffers = stack_module_state(list(members))
        self._names = list(params)
        self.stacked = nn.ParameterList([nn.Parameter(params[name]) for name in self._names])
        self._buffer_names = list(buffers)
        for i, name in enumerate(self._buffer_names):
            self.register_buffer(f"stacked_buffer_{i}", buffers[name])
        # the architecture, without weights of its own (it never holds parameters: functional_call gets them)
        self._base = [copy.deepcopy(members[0]).to("meta")]

    def member_logits(self, x: Tensor) -> Tensor:
        """``[K, N, C]``: every member's logits."""
        if not self.vectorized:
            return torch.stack([member(x) for member in self.members])
        base = self._base[0]
        buffers = [getattr(self, f"stacked_buffer_{i}") for i in range(len(self._buffer_names))]

        def one(params: list[Tensor], bufs: list[Tensor], inputs: Tensor) -> Tensor:
            state = dict(zip(self._names, params, strict=True)) | dict(zip(self._buffer_names, bufs, strict=True))
            return functional_call(base, state, (inputs,))

        return vmap(one, in_dims=(0, 0, None), randomness="different")(list(self.stacked), buffers, x)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.member_logits(x)
        if self.training:
            return logits
        return torch.logsumexp(logits.log_softmax(-1), dim=0) - torch.log(torch.tensor(float(self.size)))

    def train(self, mode: bool = True) -> IndependentEnsemble:
        super().train(mode)
        if self.vectorized:
            self._base[0].train(mode)  # dropout & co. in the functional calls follow the ensemble's mode
        return self

    def extra_repr(self) -> str:
        return f"size={self.size}, vectorized={self.vectorized}"


class Independent(Ensemble):
    """``ensemble=independent``: ``size`` networks with different initial weights (member k built and initialised
    from seed ``seed + k``), trained together as one :class:`IndependentEnsemble`; the report is each member's test
    accuracy against the average of their probabilities."""

    @checked
    def __init__(
        self,
        size: Annotated[int, Setting("members of the ensemble", low=2)] = 5,
        vectorize: Annotated[bool, Setting("whether the members run as one batched network")] = True,
        seed: Annotated[int, Setting("seed of the first member", low=0, high=2**32 - 1)] | None = None,
    ) -> None:
        self.size, self.vectorize, self.seed = int(size), bool(vectorize), seed

    def network(self, build_one):
        from trainlab import rng

        base_seed = self.seed if self.seed is not None else int(torch.initial_seed() % 2**31)
        members = []
        with rng.kept():  # building the members leaves the global random state as it was
            for k in range(self.size):
                torch.manual_seed(base_seed + k)
                members.append(build_one())
        return IndependentEnsemble(members, vectorize=self.vectorize)

    def report(self, trainer, module, x, y):
        batch = getattr(trainer.datamodule, "eval_batch_size", 256)
        module.load_state_dict(self.load(trainer.ckpt_path, module.device)["state_dict"])
        module.eval()
        with torch.no_grad():
            logits = torch.cat([module.net.member_logits(module.preprocess(c)) for c in x.split(batch)], dim=1)
        return ensemble_report(list(logits.softmax(-1)), y)
