"""Learning curves and the lecture's reading of them (step 6 of its hyperparameter recipe).

Every training run saves ``curves.png`` (train/val loss and accuracy per epoch) in its run directory and a one-line
``diagnosis`` in ``metrics.json``, from the last epochs of the curves, in the lecture's order:

1. ``still improving``: the best validation accuracy of the last ``window`` (3) epochs beats the best before them by
   more than ``rising`` (0.005): train longer.
2. ``overfitting``: training accuracy exceeds validation accuracy by more than ``gap`` (0.05) at the last epoch:
   more regularization or data.
3. ``underfitting``: no such gap, and training accuracy below ``fit`` (0.99): a bigger model or longer training.
4. ``converged``: no gap, the training data fitted, validation flat.

The thresholds are rules of thumb for accuracy-scale metrics; the numbers behind each verdict are in the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def diagnose(
    history: Sequence[dict[str, float]], window: int = 3, rising: float = 0.005, gap: float = 0.05, fit: float = 0.99
) -> str:
    """One line naming the verdict first, from per-epoch ``train/acc`` and ``val/acc``."""
    epochs = [h for h in history if "train/acc" in h and "val/acc" in h]
    if len(epochs) < 2:
        return "too short to tell: fewer than 2 epochs with train and validation accuracy"
    val = [h["val/acc"] for h in epochs]
    train_acc, val_acc = epochs[-1]["train/acc"], val[-1]
    before = val[:-window] if len(val) > window else val[:1]
    recent = val[-window:] if len(val) > window else val[1:]
    if max(recent) - max(before) > rising:
        return (
            f"still improving: validation accuracy rose from {max(before):.4f} to {max(recent):.4f} in the last "
            f"{len(recent)} epochs; train longer"
        )
    if train_acc - val_acc > gap:
        return (
            f"overfitting: train accuracy {train_acc:.4f} vs validation {val_acc:.4f} (gap {train_acc - val_acc:.4f}); "
            "add regularization or data"
        )
    if train_acc < fit:
        return (
            f"underfitting: no train/validation gap ({train_acc:.4f} vs {val_acc:.4f}) and training accuracy below "
            f"{fit}; try a bigger model or longer training"
        )
    return f"converged: train {train_acc:.4f}, validation {val_acc:.4f}, validation flat for {len(recent)} epochs"


def plot_curves(history: Sequence[dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Loss (left) and accuracy (right) per epoch, train and validation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for stage, style in (("train", "-"), ("val", "--")):
            points = [(h["epoch"], h[f"{stage}/{metric}"]) for h in history if f"{stage}/{metric}" in h]
            if points:
                ax.plot(*zip(*points, strict=True), style, marker="o", markersize=3, label=stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
