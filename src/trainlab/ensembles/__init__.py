"""Model ensembles (``ensemble=`` group) and the report every ensemble run writes.

The lecture: train several models and average their predicted probabilities at test time (about +2%). The cheap
relatives from the same lecture family are here too: snapshot ensembles (one training run, one member per cycle of
a cyclic learning rate), an exponential moving average of the weights, and stochastic weight averaging. Seed
ensembles of separate runs are evaluated with ``trainlab-eval ckpt_path=[a.ckpt,b.ckpt]`` or a multirun directory.

Every ensemble run adds to ``metrics.json`` and to every logger: ``test/acc_members`` (each member's test
accuracy), ``test/acc_members_mean``, ``test/acc_ensemble`` and ``ensemble_gain`` (ensemble minus mean member).
For ``ema`` and ``swa`` the "member" is the raw (not averaged) network at the tested checkpoint and the "ensemble"
is the averaged one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn


@torch.no_grad()
def test_probabilities(module: nn.Module, state_dict: Mapping[str, Tensor], x: Tensor, batch_size: int) -> Tensor:
    """Class probabilities of ``module`` with ``state_dict`` loaded, in eval mode, on the inputs ``x``."""
    module.load_state_dict(state_dict)
    module.eval()
    return torch.cat([module(chunk).softmax(-1) for chunk in x.split(batch_size)])


def ensemble_report(
    member_probs: Sequence[Tensor], labels: Tensor, ensemble_probs: Tensor | None = None
) -> dict[str, Any]:
    """Accuracy of each member, their mean, the ensemble's (the mean of the members' probabilities unless given),
    and the gain."""
    member_acc = [(p.argmax(-1) == labels).float().mean().item() for p in member_probs]
    if ensemble_probs is None:
        ensemble_probs = torch.stack(list(member_probs)).mean(0)
    acc = (ensemble_probs.argmax(-1) == labels).float().mean().item()
    nll = torch.nn.functional.nll_loss(ensemble_probs.clamp_min(1e-12).log(), labels).item()
    members_mean = sum(member_acc) / len(member_acc)
    return {
        "test/acc_ensemble": acc,
        "test/loss_ensemble": nll,
        "test/acc_members_mean": members_mean,
        "ensemble_gain": acc - members_mean,
        "test/acc_members": member_acc,
        "members": len(member_acc),
    }


def run_report(
    kind: str, trainer, module: nn.Module, datamodule, tested_ckpt: str, last_ckpt: str | None
) -> dict[str, Any]:
    """The ensemble figures of a finished ``ensemble=<kind>`` run, on the test split."""
    from trainlab.ensembles.snapshot import SnapshotEnsemble

    def load(path: str) -> dict[str, Any]:
        return torch.load(path, map_location=module.device, weights_only=True)

    datamodule.setup("test")
    x, y = (t.to(module.device) for t in datamodule.splits["test"])
    batch = datamodule.eval_batch_size
    if kind == "snapshot":
        callback = next(c for c in trainer.callbacks if isinstance(c, SnapshotEnsemble))
        probs = [test_probabilities(module, load(path)["state_dict"], x, batch) for path in callback.members()]
        return ensemble_report(probs, y)
    if kind == "independent":
        tested = load(tested_ckpt)
        module.load_state_dict(tested["state_dict"])
        module.eval()
        with torch.no_grad():
            logits = torch.cat([module.net.member_logits(module.preprocess(c)) for c in x.split(batch)], dim=1)
        return ensemble_report(list(logits.softmax(-1)), y)
    if kind in ("ema", "swa"):
        tested = load(tested_ckpt)
        averaged = test_probabilities(module, tested["state_dict"], x, batch)
        raw_state = tested.get("current_model_state") or load(last_ckpt)["current_model_state"]
        raw = test_probabilities(module, raw_state, x, batch)
        return ensemble_report([raw], y, ensemble_probs=averaged)
    raise ValueError(f"ensemble.kind={kind!r}: choose one of independent, snapshot, ema, swa")
