"""The global random state (torch CPU and CUDA, numpy, Python's ``random``): save it, put it back.

:func:`capture` returns only types that ``torch.load(weights_only=True)`` accepts (tensors, lists, tuples, str,
int, float), so the state can travel in a checkpoint; :func:`restore` puts it back; :func:`kept` restores it on
leaving a ``with`` block.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    """Every global random state: ``{"torch", "cuda", "numpy", "python"}`` (CUDA's only once CUDA is in use)."""
    name, keys, *rest = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), *rest],
        "python": random.getstate(),
    }


def restore(state: dict[str, Any]) -> None:
    """Put back a state from :func:`capture` (also one read back from a checkpoint)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@contextmanager
def kept() -> Iterator[None]:
    """Draws inside the block leave the global random state as it was before."""
    state = capture()
    try:
        yield
    finally:
        restore(state)
