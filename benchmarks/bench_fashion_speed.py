"""experiment=fashion_mnist_speed on one GPU: seconds of training to the test accuracy it reaches.

    python benchmarks/bench_fashion_speed.py              # on a GPU machine; writes results/fashion_speed.{json,md}
    python benchmarks/bench_fashion_speed.py compile=true # extra overrides are passed to trainlab-train

Runs the recipe twice in one process (the first run warms up CUDA, cuDNN's autotuner and, with compile=true,
the compiler) and reports the second: fit seconds (training and validation, data already on the GPU), test
accuracy, the card's name. Without a GPU it says so and exits 0 (nothing to measure; the recipe's correctness is
tested on the CPU in tests/test_speed.py). Exits 1 when the test accuracy is below 0.94.
"""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stdout

import torch
from common import run_trainlab, write

TARGET = 0.94


def main(overrides: list[str]) -> int:
    if not torch.cuda.is_available():
        print("no GPU here: experiment=fashion_mnist_speed is timed on a GPU only (tests/test_speed.py: CPU)")
        return 0
    card = torch.cuda.get_device_name(0)
    runs = []
    for _ in range(2):
        with redirect_stdout(io.StringIO()):
            runs.append(run_trainlab(["experiment=fashion_mnist_speed", *overrides]))
    result = runs[-1]
    acc = float(result["test/acc"])
    data = {
        "card": card,
        "overrides": overrides,
        "fit_seconds": result["fit_seconds"],
        "test_acc": acc,
        "epochs": result["epochs"],
        "warm_up_fit_seconds": runs[0]["fit_seconds"],
        "met": acc >= TARGET,
    }
    write(
        "fashion_speed",
        data,
        [
            "## experiment=fashion_mnist_speed",
            "",
            "| card | overrides | fit seconds | test acc | target |",
            "|---|---|---|---|---|",
            f"| {card} | {' '.join(overrides) or '(none)'} | {result['fit_seconds']:.1f} | {acc:.4f} "
            f"| >= {TARGET}: {'met' if acc >= TARGET else 'MISSED'} |",
        ],
    )
    return 0 if acc >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
