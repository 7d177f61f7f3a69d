"""Dropout and AlphaDropout as layer regularizers (``regularizer=[dropout]``, ``[alpha_dropout]``).

Dropout (Srivastava et al. 2014) is torch's ``nn.Dropout``: ``p`` is the probability of DROPPING a unit, and the
survivors are scaled by 1/(1-p) in training ("inverted dropout"), so the layer is the identity at test time. The
lecture's p is the KEEP probability, with the scaling at test time: lecture p=0.8 is ``regularizer.dropout.p=0.2``
here (p=0.5 is the same in both). The networks place it after every hidden activation (MLP), after the hidden fully
connected layer (CNN), and before the classifier (ResNet).

AlphaDropout (Klambauer et al. 2017) is torch's ``nn.AlphaDropout``, in the same places: it keeps the zero mean and
unit variance of SELU's activations, so it goes with ``activation=selu``.
"""

from __future__ import annotations

from typing import Annotated

from torch import nn

from trainlab.settings import Setting, checked
from trainlab.techniques import LayerRegularizer


class Dropout(LayerRegularizer):
    """``dropout()`` makes one ``nn.Dropout(p)``; networks take it as their ``dropout`` argument."""

    argument = "dropout"

    @checked
    def __init__(
        self, p: Annotated[float, Setting("probability of zeroing a unit", low=0, high=1, high_open=True)] = 0.5
    ) -> None:
        self.p = float(p)

    def __call__(self) -> nn.Module:
        return nn.Dropout(self.p)


class AlphaDropout(LayerRegularizer):
    """``alpha_dropout()`` makes one ``nn.AlphaDropout(p)``; networks take it as their ``alpha_dropout`` argument."""

    argument = "alpha_dropout"

    @checked
    def __init__(
        self, p: Annotated[float, Setting("probability of dropping a unit", low=0, high=1, high_open=True)] = 0.1
    ) -> None:
        self.p = float(p)

    def __call__(self) -> nn.Module:
        return nn.AlphaDropout(self.p)
