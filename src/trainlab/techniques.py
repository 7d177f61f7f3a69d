"""Where a technique acts in the training step, and the order a run applies the selected ones in.

Every entry of ``augment=[...]`` and ``regularizer=[...]`` is an object named by ``_target_`` in its YAML
(``configs/augment/hflip.yaml``: ``hflip: {_target_: trainlab.augment.HFlip, p: 0.5}``) and instantiated by Hydra.
Its class says where it acts with the class attribute ``stage``, one of :data:`STAGES`, in the order a training
step meets them:

``pixels``
    ``x -> x`` on the raw training images, before preprocessing (flips, crops, rotations, colour). With
    ``data.loader=dataloader`` the DataLoader's workers apply each one's ``per_sample()`` twin instead.
``normalized``
    ``x -> x`` after preprocessing, where zero is the data mean (cutout).
``batch``
    ``(x, target) -> (x, target)`` with ``target`` as class probabilities ``[N, C]`` (mixup, CutMix, label
    smoothing). Techniques marked ``exclusive`` (mixup, CutMix) take turns: each batch uses one of them, drawn
    uniformly; an ``active`` attribute that is false (``alpha=0``) leaves the batch exactly as it was.
``loss``
    ``net -> scalar`` added to the training loss (L1, L2, elastic net), logged as ``train/reg_loss``.
``layer``
    a layer inside the network: the network's constructor receives the object as its argument named
    ``argument`` (e.g. ``dropout``) and calls it to make the layers (:class:`LayerRegularizer`). A network
    without that argument cannot apply it and the run is refused.

Within a stage the order is the class attribute ``order`` (default 0), then the order of the command line, so
``augment=[crop,hflip]`` and ``augment=[hflip,crop]`` are the same augmentation. A new technique is a class with
a ``stage``, a YAML naming it, and a test: nothing here or in the builder changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STAGES = ("pixels", "normalized", "batch", "loss", "layer")


class LayerRegularizer:
    """A regularizer that is a layer inside the network. The network's constructor receives this object as its
    argument named :attr:`argument` and calls it to make each such layer (a factory: every call a new layer)."""

    stage: ClassVar[str] = "layer"
    #: the network constructor's argument that receives this object
    argument: ClassVar[str]

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"


def stage_of(technique: Any) -> str:
    stage = getattr(technique, "stage", None)
    if stage not in STAGES:
        raise ValueError(
            f"{type(technique).__module__}.{type(technique).__name__} has stage={stage!r}; a technique class says "
            f"where it acts with a class attribute stage, one of {', '.join(STAGES)}"
        )
    return stage


def in_order(techniques: Iterable[Any]) -> list[Any]:
    """``techniques`` sorted by stage, then ``order``; the sort is stable (command-line order breaks ties)."""
    techniques = list(techniques)
    return sorted(techniques, key=lambda t: (STAGES.index(stage_of(t)), getattr(t, "order", 0)))


class Techniques(nn.Module):
    """The selected techniques, applied to a training batch in the order of :data:`STAGES`.

    Args:
        techniques: the instantiated ``augment`` and ``regularizer`` entries, in any order.
        pixels_in_loader: the DataLoader's workers apply the ``pixels`` stage (``data.loader=dataloader``).
    """

    def __init__(self, techniques: Iterable[Any] = (), pixels_in_loader: bool = False) -> None:
        super().__init__()
        ordered = in_order(techniques)
        self.selected = [t for t in ordered]
        by_stage = {stage: [t for t in ordered if t.stage == stage] for stage in STAGES}
        pixels = [] if pixels_in_loader else by_stage["pixels"]
        self.pixels = nn.Sequential(*pixels)  # nn.Modules: train/eval mode and .to(device) follow the classifier
        self.normalized = nn.Sequential(*by_stage["normalized"])
        self.batch = [t for t in by_stage["batch"] if getattr(t, "active", True)]
        self.loss_terms = by_stage["loss"]
        self.layers = by_stage["layer"]

    def of_stage(self, stage: str) -> list[Any]:
        return [t for t in self.selected if t.stage == stage]

    def on_pixels(self, x: Tensor) -> Tensor:
        return self.pixels(x) if len(self.pixels) else x

    def on_normalized(self, x: Tensor) -> Tensor:
        return self.normalized(x) if len(self.normalized) else x

    def on_batch(self, x: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
        """``(x, target)``: the labels ``y`` unchanged without batch techniques, else mixed class probabilities."""
        if not self.batch:
            return x, y
        target = F.one_hot(y, num_classes).to(x.dtype) if y.ndim == 1 else y
        exclusive = [t for t in self.batch if getattr(t, "exclusive", False)]
        if exclusive:  # one of them per batch, drawn from torch's global CPU generator (no host sync)
            chosen = exclusive[0] if len(exclusive) == 1 else exclusive[int(torch.randint(len(exclusive), ()))]
            x, target = chosen(x, target)
        for technique in self.batch:
            if not getattr(technique, "exclusive", False):
                x, target = technique(x, target)
        return x, target

    def loss_term(self, net: nn.Module) -> Tensor | None:
        """The sum of the ``loss`` stage's terms for ``net``, or None without any."""
        if not self.loss_terms:
            return None
        return sum(term(net) for term in self.loss_terms)

    def extra_repr(self) -> str:
        return ", ".join(type(t).__name__ for t in self.selected)
