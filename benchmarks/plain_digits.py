"""The default trainlab run written as a plain PyTorch script: the baseline of ``bench_startup.py``'s whole-run test.

Same data (scikit-learn's digits, the same stratified 1257/270/270 split), the same preprocessing (normalise with
the training split's mean and std), the same network (MLP 64-256-256-10, ReLU, torch's default init), Adam 1e-3,
cosine decay over 40 epochs, batches of 64, early stopping after 10 epochs without a better validation accuracy,
and the test accuracy of the best epoch's weights. No config system, no checkpoints on disk, no logs.

    python benchmarks/plain_digits.py        # prints the test accuracy

``--first-step``: exit right after the first optimizer step, printing the time (the start-up benchmark).
"""

from __future__ import annotations

import copy
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def main() -> None:
    torch.manual_seed(42)
    x, y = load_digits(return_X_y=True)
    x = (x.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.15, stratify=y, random_state=0)
    train, val = train_test_split(rest, test_size=0.15 / 0.85, stratify=y[rest], random_state=0)
    xs = {k: torch.from_numpy(x[i]) for k, i in (("train", train), ("val", val), ("test", test))}
    ys = {k: torch.from_numpy(y[i].astype(np.int64)) for k, i in (("train", train), ("val", val), ("test", test))}
    mean, std = xs["train"].mean(), xs["train"].std()
    xs = {k: (v - mean) / std for k, v in xs.items()}

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40)
    best_acc, best_state, waited = -1.0, None, 0
    for _ in range(40):
        net.train()
        perm = torch.randperm(len(ys["train"]))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(net(xs["train"][idx]), ys["train"][idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if "--first-step" in sys.argv:
                print(f"first_step {time.time():.6f}")
                return
        scheduler.step()
        net.eval()
        with torch.no_grad():
            acc = (net(xs["val"]).argmax(-1) == ys["val"]).float().mean().item()
        if acc > best_acc:
            best_acc, best_state, waited = acc, copy.deepcopy(net.state_dict()), 0
        else:
            waited += 1
            if waited >= 10:
                break
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        test_acc = (net(xs["test"]).argmax(-1) == ys["test"]).float().mean().item()
    print(f"test_acc {test_acc:.4f}")


if __name__ == "__main__":
    main()
