"""The console scripts end to end, as a user runs them (subprocesses in a temporary working directory)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import yaml

from .conftest import BIN, read_metrics, run_cli

QUIET = ["trainer.enable_progress_bar=false", "extras.print_config=false"]

pytestmark = pytest.mark.slow


def run_dirs(root, task="train"):
    return sorted(p for p in (root / "logs" / task / "runs").iterdir() if p.is_dir())


def test_help_and_cfg_answer_without_importing_torch(tmp_path):
    code = (
        "import sys\n"
        "from trainlab.train import main\n"
        "sys.argv = ['trainlab-train', *sys.argv[1:]]\n"
        "main()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'pytorch_lightning' not in sys.modules\n"
    )
    out = run_cli([sys.executable, "-c", code, "--cfg", "job"], cwd=tmp_path).stdout
    cfg = yaml.safe_load(out)
    assert cfg["model"]["_target_"] == "trainlab.models.mlp.MLP"
    help_text = run_cli([sys.executable, "-c", code, "--help"], cwd=tmp_path).stdout
    for group in ("data", "model", "optimizer", "scheduler", "callbacks", "logger", "trainer", "debug"):
        assert f"{group}:" in help_text
    assert not (tmp_path / "logs").exists()  # asking for help creates no run


@pytest.mark.parametrize(
    "bad",
    ["optimizer.lr=-1", "regularizer=[dropout] regularizer.dropout.p=1.5", "augment=[crop] augment.crop.padding=8"],
)
def test_a_bad_value_is_refused_before_torch_is_imported(tmp_path, bad):
    """The declared range (trainlab.settings) is checked on the composed config before torch is imported: exit 2,
    one line, nothing written, well under a second of work after Hydra."""
    code = (
        "import sys\n"
        "from trainlab.train import main\n"
        "sys.argv = ['trainlab-train', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 2, exit.code\n"
        "    assert 'torch' not in sys.modules, 'torch was imported'\n"
        "    print('refused without torch')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *bad.split()], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().splitlines()[-1] == "refused without torch", proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("trainlab-train: ") and "must be" in line and line.endswith("; nothing was run")
    assert not (tmp_path / "logs").exists()


def test_default_run_reaches_the_accuracy_bar(tmp_path):
    """`trainlab-train` with no arguments: digits, MLP, >= 0.95 test accuracy."""
    run_cli(["trainlab-train"], cwd=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    metrics = read_metrics(run_dir)
    assert metrics["test/acc"] >= 0.95, metrics
    for name in ("config.yaml", "train.log", "csv/metrics.csv", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    assert metrics["best_ckpt"].startswith(str(run_dir))


def test_module_entry_points_and_eval_equals_train(tmp_path):
    run_cli([sys.executable, "-m", "trainlab.train", "model=cnn", "trainer.max_epochs=2", *QUIET], cwd=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    trained = read_metrics(run_dir)
    run_cli([sys.executable, "-m", "trainlab.eval", f"ckpt_path={trained['best_ckpt']}", *QUIET], cwd=tmp_path)
    (eval_dir,) = run_dirs(tmp_path, "eval")
    evaluated = read_metrics(eval_dir)
    assert evaluated["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-7)
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-6)

    # the run's directory stands for its best checkpoint; its checkpoints/ folder is refused with the files it holds
    run_cli(["trainlab-eval", f"ckpt_path={run_dir}", "hydra.run.dir=eval_of_dir"], cwd=tmp_path)
    assert read_metrics(tmp_path / "eval_of_dir")["test/acc"] == pytest.approx(trained["test/acc"], abs=1e-7)
    proc = subprocess.run(
        [str(BIN / "trainlab-eval"), f"ckpt_path={run_dir}/checkpoints"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "is a directory of checkpoints (" in proc.stderr and "last.ckpt" in proc.stderr


def test_multirun_gives_each_job_its_own_directory(tmp_path):
    run_cli(
        [
            "trainlab-train",
            "-m",
            "optimizer=sgd,adam",
            "seed=1,2",
            "trainer.max_epochs=1",
            "test=false",
            *QUIET,
        ],
        cwd=tmp_path,
    )
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        cfg = yaml.safe_load((job / "config.yaml").read_text())
        seen.add((cfg["optimizer"]["_target_"].split(".")[-1], cfg["seed"]))
        assert read_metrics(job)["seed"] == cfg["seed"]
    assert seen == {("SGD", 1), ("SGD", 2), ("Adam", 1), ("Adam", 2)}
    assert (sweep / "multirun.yaml").is_file()
    # the multirun's best checkpoints as an ensemble
    run_cli(["trainlab-eval", f"ckpt_path={sweep}", *QUIET], cwd=tmp_path)
    (eval_dir,) = run_dirs(tmp_path, "eval")
    ensemble = read_metrics(eval_dir)
    assert ensemble["members"] == 4 and len(ensemble["test/acc_members"]) == 4
    assert ensemble["ensemble_gain"] == pytest.approx(ensemble["test/acc_ensemble"] - ensemble["test/acc_members_mean"])


def test_ddp_cpu_runs_two_processes_in_one_run_directory(tmp_path):
    run_cli(["trainlab-train", "trainer=ddp_cpu", "trainer.max_epochs=2", *QUIET], cwd=tmp_path)
    (run_dir,) = run_dirs(tmp_path)  # exactly one run directory
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["train"]
    metrics = read_metrics(run_dir)
    # each of the 2 processes takes half of the 1,257 training images: ceil(628 / 64) = 10 steps per epoch
    assert metrics["steps"] == 2 * math.ceil((1257 // 2) / 64)
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log"]
    assert len(list(run_dir.rglob("metrics.csv"))) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == sorted(
        [metrics["best_ckpt"].split("/")[-1], "last.ckpt"]
    )
    assert 0.0 < metrics["test/acc"] <= 1.0


def test_ddp_cpu_under_multirun_launches_each_job_once(tmp_path):
    run_cli(["trainlab-train", "-m", "trainer=ddp_cpu", "seed=1,2", "trainer.max_epochs=1", *QUIET], cwd=tmp_path)
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    assert not (tmp_path / "logs/train/runs").exists()  # no child started a run of its own
    for job in jobs:
        assert read_metrics(sweep / job)["steps"] == math.ceil((1257 // 2) / 64)


def test_a_bad_override_fails_before_training(tmp_path):
    proc = subprocess.run(
        [str(sys.executable), "-m", "trainlab.train", "model=resnet9000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "resnet9000" in proc.stderr and "mlp" in proc.stderr  # names the bad value and the valid options
    assert not list(tmp_path.rglob("*.ckpt"))
