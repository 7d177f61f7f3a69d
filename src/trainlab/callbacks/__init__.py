"""Callbacks that Lightning does not ship in the form trainlab needs."""

from trainlab.callbacks.activation_stats import ActivationStats
from trainlab.callbacks.checkpoint import ModelCheckpoint

__all__ = ["ActivationStats", "ModelCheckpoint"]
