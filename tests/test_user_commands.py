"""Every console script and every ``trainer=`` option, run exactly as a user types it: progress bar on, config tree
printed, default callbacks and logger. Tests elsewhere turn these defaults off to be fast; these never do (a green
suite once hid a crash of ``trainer=ddp_cpu`` with the default progress bar)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from trainlab import CONFIG_DIR

from .conftest import BIN, read_metrics, run_cli

pytestmark = pytest.mark.slow

TRAINER_OPTIONS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs/trainer").glob("*.yaml"))


def user(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """A console script as a user runs it (no test-only settings); returns whatever it did, exit code included."""
    exe = args[0] if args[0] == sys.executable else str(BIN / args[0])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([exe, *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def shows_the_defaults(proc: subprocess.CompletedProcess) -> None:
    """What a user sees by default: the config tree, the progress bar, the summary."""
    out = proc.stdout + proc.stderr
    assert "CONFIG" in out  # the printed config tree
    assert "Epoch" in out and "━" in out  # the rich progress bar
    assert "summary (" in out and "Traceback" not in out
    # and not Lightning's advertisements or deprecation notes, printed on every run before
    assert "💡 Tip" not in out and "litlogger" not in out and "LeafSpec" not in out
    assert "Trainer already configured with model summary callbacks" not in out


def composed_trainer(option: str):
    """``trainer`` as ``trainlab-train trainer=<option>`` composes it (none of the tests' quiet settings)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer={option}"])
    GlobalHydra.instance().clear()
    return cfg.trainer


def gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@pytest.mark.parametrize("option", TRAINER_OPTIONS)
def test_every_trainer_option_trains_or_says_why_not(tmp_path, option):
    """``trainlab-train trainer=<option>``: trains, or (a GPU option on a machine without one) exit 2, one line."""
    trainer = composed_trainer(option)
    devices = trainer.devices if isinstance(trainer.devices, int) else 1
    proc = user(["trainlab-train", f"trainer={option}", "trainer.max_epochs=2"], cwd=tmp_path)
    if trainer.accelerator in ("gpu", "cuda") and gpus() < devices:
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out[-3000:]
        assert "Traceback" not in out
        assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1, out[-3000:]  # one line, nothing else
        message = proc.stderr.strip()
        assert message.startswith("trainlab-train: ")
        assert "trainer.accelerator=" in message or "trainer.devices=" in message
        assert list(tmp_path.iterdir()) == []  # nothing written, not even an empty logs/
        return
    assert proc.returncode == 0, proc.stderr[-6000:]
    shows_the_defaults(proc)
    (run_dir,) = (tmp_path / "logs/train/runs").iterdir()
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] == 2 and metrics["stop_reason"] == "max_epochs"
    assert 0.5 < metrics["test/acc"] <= 1.0, metrics  # two epochs of the default MLP reach ~0.9
    assert (run_dir / "csv/metrics.csv").is_file() and Path(metrics["last_ckpt"]).is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """``trainlab-train trainer.max_epochs=2``: one default run for the commands that use its outputs."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = user(["trainlab-train", "trainer.max_epochs=2"], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-6000:]
    (run_dir,) = (cwd / "logs/train/runs").iterdir()
    return run_dir


def test_eval_with_the_defaults_reproduces_the_training_runs_test_accuracy(trained, tmp_path):
    trained_metrics = read_metrics(trained)
    proc = user(["trainlab-eval", f"ckpt_path={trained_metrics['best_ckpt']}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-6000:]
    out = proc.stdout + proc.stderr
    assert "CONFIG" in out and "Testing" in out and "Traceback" not in out
    (eval_dir,) = (tmp_path / "logs/eval/runs").iterdir()
    evaluated = read_metrics(eval_dir)
    assert evaluated["test/acc"] == pytest.approx(trained_metrics["test/acc"], abs=1e-7)
    assert evaluated["test/loss"] == pytest.approx(trained_metrics["test/loss"], rel=1e-6)


def test_a_search_then_best_and_summarize_as_a_user_types_them(tmp_path):
    """``trainlab-train -m hparams_search=coarse``, then ``python -m trainlab.sweep best`` and
    ``python -m trainlab.summarize`` on its directory (budget and epochs cut down: the only changes)."""
    proc = user(
        ["trainlab-train", "-m", "hparams_search=coarse", "hydra.sweeper.n_trials=2", "trainer.max_epochs=1"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    (sweep,) = (tmp_path / "logs/hparams_search/sweeps").iterdir()
    best = run_cli([sys.executable, "-m", "trainlab.sweep", "best", str(sweep)], cwd=tmp_path).stdout.split()
    assert {o.split("=")[0] for o in best} == {"optimizer.lr", "optimizer.weight_decay"}
    assert all(float(o.split("=")[1]) > 0 for o in best)
    table = run_cli([sys.executable, "-m", "trainlab.summarize", str(sweep), "--metric", "val/acc_best"], cwd=tmp_path)
    rows = [line for line in table.stdout.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and all("| 1 | 0 |" in r for r in rows)  # two settings, one run each, none failed


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-m", "trainlab.sweep", "best", "no_such_dir"], "sweep_dir='no_such_dir' holds no sweep.csv"),
        (["-m", "trainlab.summarize", "no_such_dir"], "sweep_dir='no_such_dir' is not a directory"),
    ],
)
def test_the_report_commands_refuse_a_bad_directory_in_one_line(tmp_path, args, fragment):
    proc = user([sys.executable, *args], cwd=tmp_path)
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
