"""On a GPU: the training and validation steps, with a weight penalty and the divergence guard, never synchronise
with the host (``torch.cuda.set_sync_debug_mode("error")`` makes any synchronising CUDA call raise). Run by
``make bench-gpu``; exits 1 when a step synchronises, 2 without a GPU."""

from __future__ import annotations

import sys
from functools import partial
from types import SimpleNamespace

import torch
from torch import nn

from trainlab.callbacks.divergence import DivergenceGuard
from trainlab.classifier import Classifier
from trainlab.regularizers.penalties import L2
from trainlab.techniques import Techniques


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_no_sync: needs a CUDA device", file=sys.stderr)
        return 2
    net = nn.Linear(4, 3)
    clf = Classifier(net, 3, partial(torch.optim.SGD, lr=0.1), techniques=Techniques([L2(0.01)])).cuda()
    guard, trainer = DivergenceGuard(), SimpleNamespace(global_step=1)
    batch = (torch.randn(8, 4, device="cuda"), torch.randint(0, 3, (8,), device="cuda"))
    clf.training_step(batch, 0), clf.validation_step(batch, 0)  # the first calls initialise lazily
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a synchronising CUDA call raises
    try:
        loss = clf.training_step(batch, 1)
        guard.on_before_backward(trainer, clf, loss)
        clf.validation_step(batch, 1)
    except RuntimeError as err:
        print(f"gpu_no_sync: a step synchronised with the host: {err}", file=sys.stderr)
        return 1
    finally:
        torch.cuda.set_sync_debug_mode(0)
    print("gpu_no_sync: no host synchronisation in the training and validation steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
