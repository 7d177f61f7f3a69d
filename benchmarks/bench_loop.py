"""Loop overhead and logging cost: trainlab-train against a hand-written PyTorch loop, in the same process.

1. Loop overhead. The same network (built by trainlab from the same config), data, batch size, optimizer
   (Adam 1e-3), schedule (cosine per epoch) and number of steps, trained (a) by a plain PyTorch loop (shuffle,
   slice, forward, cross-entropy, backward, step; validation once per epoch) and (b) by trainlab's ``train(cfg)``
   with its default callbacks (checkpoints, early stopping, LR monitor, progress bar, model summary, initial-loss
   check) and the csv logger. The figure is the time of the training steps (first batch start to last batch end
   of each epoch, validation excluded) per step; the whole fit (validation, checkpoints, logging) is reported too.
   Two cases: the digits MLP 2x256 (tiny steps) and the Fashion-MNIST CNN of ``experiment=fashion_cnn`` (heavier
   steps; synthetic data of the same shape when the data set is not installed).
   Targets: at most 0.3 ms per step over the raw loop on the MLP, at most 5% on the CNN.
2. Logging cost: the digits MLP's whole fit with ``logger=csv`` and ``logger=wandb`` (offline) against
   ``logger=none``. Target: at most 5% slower.

Each figure is the median over REPEATS runs, alternating the two sides; ratios are computed pair by pair.

    python benchmarks/bench_loop.py        # prints the tables, writes benchmarks/results/loop.{json,md}

Exits 1 when a target is missed. Run it on an idle machine: with another busy process, 2-thread PyTorch slows
down many times over.
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from common import median, run_trainlab, write

REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
QUIET = ["extras.print_config=false", "extras.curves=false", "test=false", "seed=0"]
CASES = {
    # name: (trainlab overrides, target kind, target)
    "digits MLP": (["trainer.max_epochs=20", "callbacks.early_stopping=null"], "ms_per_step", 0.3),
    "Fashion-MNIST CNN": (
        [
            "experiment=fashion_cnn",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=100",
            "+trainer.limit_val_batches=10",
            "callbacks.early_stopping=null",
        ],
        "ratio",
        1.05,
    ),
}


def fashion_available() -> bool:
    """Whether Fashion-MNIST's files are on this machine (no download is tried)."""
    from trainlab.data.mnist import FashionMNISTDataModule

    try:
        FashionMNISTDataModule(data_dir="data", download=False).load_splits()
    except Exception:  # noqa: BLE001 - any missing or unreadable file: use synthetic data of the same shape
        return False
    return True


def raw_loop(overrides: list[str]) -> dict[str, float]:
    """The hand-written loop: same network, data, optimizer, schedule, batches and number of steps as trainlab."""
    import tempfile

    from common import compose

    from trainlab import build

    with tempfile.TemporaryDirectory() as out:
        cfg = compose([*QUIET, *overrides], out)
        torch.manual_seed(0)
        dm = build.build_datamodule(cfg)
        dm.setup("fit")
        net = build.build_net(cfg)
    x_train, y_train = dm.splits["train"]
    x_val, y_val = dm.splits["val"]
    mean, std = x_train.mean(), x_train.std()  # normalise once, as one would by hand
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    epochs = int(cfg.trainer.max_epochs)
    limit = cfg.trainer.get("limit_train_batches") or 1.0
    limit_val = cfg.trainer.get("limit_val_batches") or 1.0
    batch, eval_batch = int(cfg.data.batch_size), int(dm.eval_batch_size)
    n_batches = math.ceil(len(x_train) / batch)
    n_batches = int(limit) if isinstance(limit, int) or limit > 1 else int(n_batches * limit)
    optimizer = torch.optim.Adam(net.parameters(), lr=float(cfg.optimizer.lr))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    generator = torch.Generator().manual_seed(0)
    step_seconds, steps = 0.0, 0
    fit_start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=generator)
        start = time.perf_counter()
        for i in range(n_batches):
            idx = perm[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        step_seconds += time.perf_counter() - start
        scheduler.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            val_batches = math.ceil(len(x_val) / eval_batch)
            val_batches = int(limit_val) if isinstance(limit_val, int) or limit_val > 1 else val_batches
            for i in range(val_batches):
                sl = slice(i * eval_batch, (i + 1) * eval_batch)
                correct += int((net(x_val[sl]).argmax(-1) == y_val[sl]).sum())
    return {"step_seconds": step_seconds, "steps": steps, "fit_seconds": time.perf_counter() - fit_start}


def loop_overhead() -> tuple[dict, list[str], bool]:
    results, ok = {}, True
    table = [
        "| case | raw loop ms/step | trainlab ms/step | overhead ms/step | ratio | whole fit raw / trainlab (s) "
        "| target |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (overrides, kind, target) in CASES.items():
        if name.startswith("Fashion") and not fashion_available():
            overrides = [*overrides, "data=synthetic"]
        pairs = []
        for _ in range(REPEATS):
            raw = raw_loop(overrides)
            tl = run_trainlab([*QUIET, *overrides])
            assert raw["steps"] == tl["steps"], (raw["steps"], tl["steps"])
            pairs.append((raw, tl))
        raw_ms = median([1e3 * r["step_seconds"] / r["steps"] for r, _ in pairs])
        tl_ms = median([1e3 * t["step_seconds"] / t["steps"] for _, t in pairs])
        overhead = median([1e3 * (t["step_seconds"] - r["step_seconds"]) / r["steps"] for r, t in pairs])
        ratio = median([t["step_seconds"] / r["step_seconds"] for r, t in pairs])
        fit_raw, fit_tl = median([r["fit_seconds"] for r, _ in pairs]), median([t["fit_seconds"] for _, t in pairs])
        met = overhead <= target if kind == "ms_per_step" else ratio <= target
        ok &= met
        goal = f"<= {target} ms/step" if kind == "ms_per_step" else f"ratio <= {target}"
        results[name] = {
            "steps": pairs[0][0]["steps"],
            "raw_ms_per_step": raw_ms,
            "trainlab_ms_per_step": tl_ms,
            "overhead_ms_per_step": overhead,
            "ratio": ratio,
            "fit_seconds_raw": fit_raw,
            "fit_seconds_trainlab": fit_tl,
            "target": goal,
            "met": met,
        }
        table.append(
            f"| {name} ({pairs[0][0]['steps']} steps) | {raw_ms:.3f} | {tl_ms:.3f} | {overhead:+.3f} | {ratio:.2f}x "
            f"| {fit_raw:.2f} / {fit_tl:.2f} | {goal}: {'met' if met else 'MISSED'} |"
        )
    return results, table, ok


def logging_cost() -> tuple[dict, list[str], bool]:
    overrides = [*QUIET, *CASES["digits MLP"][0]]
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    results, ok = {}, True
    table = ["", "| logger | whole fit (s) | without a logger (s) | ratio | target |", "|---|---|---|---|---|"]
    for logger in ("csv", "wandb"):
        pairs = []
        for _ in range(REPEATS):
            off = run_trainlab([*overrides, "logger=none"])
            on = run_trainlab([*overrides, f"logger={logger}"])
            pairs.append((off["fit_seconds"], on["fit_seconds"]))
        ratio = median([on / off for off, on in pairs])
        met = ratio <= 1.05
        ok &= met
        results[logger] = {
            "fit_seconds": median([on for _, on in pairs]),
            "fit_seconds_no_logger": median([off for off, _ in pairs]),
            "ratio": ratio,
            "met": met,
        }
        table.append(
            f"| {logger}{' (offline)' if logger == 'wandb' else ''} | {results[logger]['fit_seconds']:.2f} "
            f"| {results[logger]['fit_seconds_no_logger']:.2f} | {ratio:.3f} | <= 1.05: {'met' if met else 'MISSED'} |"
        )
    return results, table, ok


def main() -> int:
    loop, loop_table, loop_ok = loop_overhead()
    logging, log_table, log_ok = logging_cost()
    write(
        "loop",
        {"repeats": REPEATS, "loop_overhead": loop, "logging_cost": logging},
        ["## Loop overhead: trainlab-train vs a hand-written PyTorch loop", "", *loop_table, *log_table],
    )
    return 0 if loop_ok and log_ok else 1


if __name__ == "__main__":
    sys.exit(main())
