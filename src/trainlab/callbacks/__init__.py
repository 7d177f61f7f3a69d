"""Callbacks that Lightning does not ship in the form trainlab needs."""

from trainlab.callbacks.checkpoint import ModelCheckpoint

__all__ = ["ModelCheckpoint"]
