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

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pytorch_lightning import Callback
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


def test_split(datamodule, device: torch.device) -> tuple[Tensor, Tensor]:
    """The whole test split as one tensor of inputs and one of labels, from the data module's test dataloader."""
    datamodule.setup("test")
    xs, ys = zip(*((x.to(device), y.to(device)) for x, y in datamodule.test_dataloader()), strict=True)
    return torch.cat(xs), torch.cat(ys)


class Ensemble(Callback, abc.ABC):
    """An ensemble kind (``ensemble=<kind>``; ``configs/ensemble/<kind>.yaml`` names the class): one callback that
    owns its network (:meth:`network`), its learning-rate schedule if it has one (:meth:`schedule`) and the report
    it adds to ``metrics.json`` and to every logger after the run's test (:meth:`report`).

    The LightningModule returns it from ``configure_callbacks``, so it is active in every stage; the report is
    made only when the same trainer has fitted the model (``trainlab-eval`` of a checkpoint makes none).
    """

    #: the report of the last test, read by ``trainlab-train`` into metrics.json
    run_metrics: dict[str, Any] | None = None

    def network(self, build_one: Callable[[], nn.Module]) -> nn.Module:
        """The network this ensemble trains, from ``build_one`` (which builds and initialises one member)."""
        return build_one()

    def schedule(self) -> Callable[..., Any] | None:
        """A learning-rate scheduler factory that replaces the configured one, or None."""
        return None

    @abc.abstractmethod
    def report(self, trainer, module: nn.Module, x: Tensor, y: Tensor) -> dict[str, Any]:
        """The ensemble figures (:func:`ensemble_report`) on the test inputs ``x`` with labels ``y``."""

    def load(self, path: str, device: torch.device) -> dict[str, Any]:
        return torch.load(path, map_location=device, weights_only=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        checkpoint = trainer.checkpoint_callback
        # read now: testing restores the callbacks' state from the tested checkpoint, an older one
        self.last_ckpt = checkpoint.last_model_path if checkpoint else None
        self.fitted = True

    def on_test_end(self, trainer, pl_module) -> None:
        if not getattr(self, "fitted", False) or not trainer.ckpt_path:
            return
        x, y = test_split(trainer.datamodule, pl_module.device)
        self.run_metrics = self.report(trainer, pl_module, x, y)
        for logger in trainer.loggers:
            logger.log_metrics({k: v for k, v in self.run_metrics.items() if isinstance(v, float)})
