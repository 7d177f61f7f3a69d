"""Start-up and whole-run wall time: trainlab-train against plain PyTorch scripts, each in a fresh process.

3. Start-up. ``trainlab-train --help`` and ``trainlab-train --cfg job`` (no torch import on those paths): target
   under 1 s. Process start to the first optimizer step of the default run, against a plain script that imports
   torch, builds the same MLP and steps once: target at most 0.5 s more.
4. Whole default run. ``trainlab-train`` (digits MLP, every default: config print, checkpoints, csv logs,
   curves.png, test of the best checkpoint) against ``benchmarks/plain_digits.py``, the same training written by
   hand: target at most 1.5x the wall time, at the same test accuracy.

Each figure is the median over REPEATS runs (the two sides alternate; ratios pair by pair).

    python benchmarks/bench_startup.py     # prints the table, writes benchmarks/results/startup.{json,md}

Exits 1 when a target is missed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, median, wall, write

REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
HERE = Path(__file__).resolve().parent
PLAIN_STEP = (
    "import time, torch, torch.nn.functional as F\n"
    "from torch import nn\n"
    "net = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),\n"
    "                    nn.Linear(256, 10))\n"
    "opt = torch.optim.Adam(net.parameters(), lr=1e-3)\n"
    "x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))\n"
    "loss = F.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()\n"
    "print(f'first_step {time.time():.6f}')\n"
)


def first_step(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd)
    match = re.search(r"first_step (\d+\.\d+)", proc.stdout)
    if proc.returncode != 0 or not match:
        raise RuntimeError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return float(match.group(1)) - start


def run_acc(cmd: list[str], cwd: str) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = proc.stdout + proc.stderr  # trainlab's summary goes to the log (stderr)
    match = re.search(r"test_acc\s+(\d\.\d+)", out) or re.search(r"  test/acc\s+(\d\.\d+)", out)
    return seconds, float(match.group(1)) if match else float("nan")


def main() -> int:
    train = str(BIN / "trainlab-train")
    ok, rows, data = True, [], {}
    with tempfile.TemporaryDirectory() as cwd:
        for name, args in (("--help", ["--help"]), ("--cfg job", ["--cfg", "job"])):
            seconds = median([wall([train, *args], cwd=Path(cwd)) for _ in range(REPEATS)])
            met = seconds < 1.0
            ok &= met
            data[name] = {"seconds": seconds, "met": met}
            rows.append(f"| `trainlab-train {name}` | {seconds:.2f} s | | under 1 s: {'met' if met else 'MISSED'} |")

        # the probe's directory added to the caller's PYTHONPATH, not instead of it: a checkout measured with
        # PYTHONPATH=<checkout>/src must start that checkout's trainlab, not the one installed in the environment
        env = {"PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}
        pairs = []
        for _ in range(REPEATS):
            plain = first_step([sys.executable, "-c", PLAIN_STEP], {}, cwd)
            ours = first_step([train, "+callbacks.first_step._target_=startup_probe.FirstStep"], env, cwd)
            pairs.append((plain, ours))
        plain, ours = median([p for p, _ in pairs]), median([o for _, o in pairs])
        extra = median([o - p for p, o in pairs])
        met = extra <= 0.5
        ok &= met
        data["first_step"] = {"plain_seconds": plain, "trainlab_seconds": ours, "extra_seconds": extra, "met": met}
        rows.append(
            f"| process start to first optimizer step | {ours:.2f} s | {plain:.2f} s (import torch, step once) "
            f"| at most +0.5 s: +{extra:.2f} s, {'met' if met else 'MISSED'} |"
        )

        pairs = []
        for _ in range(REPEATS):
            plain = run_acc([sys.executable, str(HERE / "plain_digits.py")], cwd)
            ours = run_acc([train], cwd)
            pairs.append((plain, ours))
        ratio = median([o[0] / p[0] for p, o in pairs])
        plain_s, ours_s = median([p[0] for p, _ in pairs]), median([o[0] for _, o in pairs])
        met = ratio <= 1.5
        ok &= met
        data["whole_run"] = {
            "plain_seconds": plain_s,
            "trainlab_seconds": ours_s,
            "ratio": ratio,
            "plain_test_acc": pairs[0][0][1],
            "trainlab_test_acc": pairs[0][1][1],
            "met": met,
        }
        rows.append(
            f"| whole default run (`trainlab-train`) | {ours_s:.2f} s, test acc {pairs[0][1][1]:.4f} "
            f"| {plain_s:.2f} s, test acc {pairs[0][0][1]:.4f} (`plain_digits.py`) "
            f"| at most 1.5x: {ratio:.2f}x, {'met' if met else 'MISSED'} |"
        )
    table = [
        "## Start-up and whole run",
        "",
        "| what | trainlab | plain PyTorch | target |",
        "|---|---|---|---|",
        *rows,
    ]
    write("startup", {"repeats": REPEATS, **data}, table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
