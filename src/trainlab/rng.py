"""Every global random state (torch CPU and CUDA, NumPy, Python's ``random``) in one place: capture it as types that
``torch.load(weights_only=True)`` reads back (checkpoints carry it), restore it, or keep it unchanged around a block."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    """Every global random state, as tensors, lists and numbers."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def restore(state: dict[str, Any]) -> None:
    """Set every global random state to what :func:`capture` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block, then put every global random state back as it was before it."""
    state = capture()
    try:
        yield
    finally:
        restore(state)
