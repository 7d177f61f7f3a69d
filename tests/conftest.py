"""Shared test helpers: configs are composed with Hydra's compose API into ``tmp_path``; nothing needs a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from trainlab import CONFIG_DIR
from trainlab.classifier import Classifier

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# One thread per test process: two test workers share two cores.
torch.set_num_threads(1)

#: settings that make a run quick and quiet without changing what it computes
QUIET = [
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "extras.print_config=false",
    "trainer.accelerator=cpu",
]


def compose_cfg(tmp_path: Path, overrides: list[str] = (), config_name: str = "train") -> DictConfig:
    """The config ``trainlab-train <overrides>`` would get, with its run directory in ``tmp_path``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            config_name,
            overrides=[*QUIET, f"hydra.run.dir={tmp_path}", f"paths.log_dir={tmp_path}/logs", *overrides],
            return_hydra_config=True,
        )
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        del cfg.hydra
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    def _make(*overrides: str, config_name: str = "train", subdir: str | None = None) -> DictConfig:
        out = tmp_path / subdir if subdir else tmp_path
        out.mkdir(parents=True, exist_ok=True)
        return compose_cfg(out, list(overrides), config_name)

    yield _make
    GlobalHydra.instance().clear()


def run_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a console script of this environment (``trainlab-train``...) in ``cwd``; fail with its output."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", **(env or {})}
    full_env.pop("WANDB_API_KEY", None) if env is None or "WANDB_API_KEY" not in env else None
    exe = args[0] if args[0] == sys.executable else str(BIN / args[0])
    proc = subprocess.run([exe, *args[1:]], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{args} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
        )
    return proc


#: where `make data` (run by `make test`) installs the real Fashion-MNIST: Debian's package dataset-fashion-mnist
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def require_fashion_mnist() -> Path:
    """The real Fashion-MNIST's directory, for a test that needs it. Missing files skip the test with the install
    command, except under CI (``CI`` set, as ``.ci/run`` does), where the set-up must have installed them: fail."""
    from trainlab.data.files import MNIST_FILES, find_files

    if find_files(MNIST_FILES, [FASHION_MNIST_DIR]) is None:
        message = (
            f"{FASHION_MNIST_DIR} lacks Fashion-MNIST: run `make data` (sudo apt-get install dataset-fashion-mnist)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return FASHION_MNIST_DIR


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


SCRIPT = [0.50, 0.70, 0.60, 0.65, 0.69, 0.30, 0.90, 0.95]  # best at epoch 1, then 3 epochs without improvement


@pytest.fixture
def scripted_val_acc(monkeypatch):
    """Make val/acc follow SCRIPT, epoch by epoch (the rest of training is real): the validation accuracy metric
    of every Classifier computes SCRIPT[epoch] (the sanity check's, its real value)."""
    original_init = Classifier.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        real = self.val_acc.compute

        def compute():
            return real() if self.trainer.sanity_checking else torch.tensor(SCRIPT[self.current_epoch])

        self.val_acc.compute = compute

    monkeypatch.setattr(Classifier, "__init__", init)
