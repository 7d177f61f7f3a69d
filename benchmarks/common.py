"""Shared by the benchmarks: composing a trainlab config in-process, timing callbacks, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def compose(overrides: list[str], out_dir: str) -> Any:
    """The config ``trainlab-train <overrides>`` gets, with its run directory ``out_dir`` (Hydra's compose API)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from trainlab import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            overrides=[f"hydra.run.dir={out_dir}", f"paths.log_dir={out_dir}/logs", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = out_dir
        del cfg.hydra
    return cfg


def run_trainlab(overrides: list[str]) -> dict[str, Any]:
    """Train in this process with ``overrides``; the metrics plus the step timer's figures."""
    from trainlab.train import train

    with tempfile.TemporaryDirectory() as out:
        cfg = compose([*overrides, "+callbacks.step_timer._target_=common.StepTimer"], out)
        metrics = train(cfg)
    return metrics | StepTimer.last.result()


class StepTimer(Callback):
    """Wall time of the training steps (first batch start to last batch end of every epoch, validation excluded)
    and of the whole fit. The last instance is kept in ``StepTimer.last`` so the benchmark can read it."""

    last: StepTimer

    def __init__(self) -> None:
        self.step_seconds = 0.0
        self.steps = 0
        self.fit_seconds = 0.0
        StepTimer.last = self

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.epoch_start, self.epoch_step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.last_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.step_seconds += self.last_end - self.epoch_start
        self.steps += trainer.global_step - self.epoch_step

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_seconds = time.perf_counter() - self.fit_start

    def result(self) -> dict[str, float]:
        return {"step_seconds": self.step_seconds, "steps": self.steps, "fit_seconds": self.fit_seconds}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write(name: str, data: dict[str, Any], table: list[str]) -> None:
    """``benchmarks/results/<name>.json`` and ``<name>.md``."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data | {"machine": machine()}, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


def wall(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    """Seconds from process start to exit; fails loudly when the command fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds
