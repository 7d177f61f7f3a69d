"""Callbacks that Lightning does not ship in the form trainlab needs."""

from trainlab.callbacks.activation_stats import ActivationStats
from trainlab.callbacks.checkpoint import AtomicCheckpointIO, ModelCheckpoint
from trainlab.callbacks.divergence import DivergenceError, DivergenceGuard
from trainlab.callbacks.history import History
from trainlab.callbacks.lean import EarlyStopping, ProgressBar

__all__ = [
    "ActivationStats",
    "AtomicCheckpointIO",
    "DivergenceError",
    "DivergenceGuard",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "ProgressBar",
]
