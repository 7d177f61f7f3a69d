"""A run directory holds one run (issue 12, defect 15): a command pointed at an earlier run's directory is refused
with one line and exit 2 before anything is written there (not even Hydra's ``.hydra/`` and log file), unless it
says ``overwrite=true`` or resumes from a checkpoint inside it; one run at a time per directory; a plain multirun
re-run into the same sweep directory skips the jobs that completed and runs the others.

Every check compares each file under the earlier run's directory, bytes (SHA-256) and modification time, before
and after the command."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from trainlab import run_dir

from .conftest import BIN, run_cli

#: refused commands, as typed, with a fragment of the one line they get; ``<old run>`` is a directory holding a
#: completed one-epoch run (for docs/bad_inputs.md)
CASES = [
    ("trainer.max_epochs=1 hydra.run.dir=<old run>", "already holds a completed run"),
    ("hydra.run.dir=<old run> ckpt_path=missing.ckpt", "already holds a completed run"),
    ("hydra.run.dir=<old run> optimizer=sgd optimizer.lr=1e30", "already holds a completed run"),
    ("hydra.run.dir=<old run> overwrite=yes", "overwrite='yes': must be true or false"),
    ("hydra.run.dir=<old run> ckpt_path=<old run>/checkpoints/nope.ckpt trainer.max_epochs=2", "no such file"),
    (
        "hydra.run.dir=<old run> ckpt_path=<old run>/checkpoints/last.ckpt trainer.max_epochs=2 model.width=7",
        "was saved by another model",
    ),
    (
        "hydra.run.dir=<old run> ckpt_path=<old run>/checkpoints/last.ckpt trainer.max_epochs=2 optimizer=sgd",
        "optimizer._target_: checkpoint 'torch.optim.Adam', now 'torch.optim.SGD'",
    ),
    ("trainer.max_epochs=1 hydra.run.dir=<dir of a run in progress>", "is in use by another run"),
    ("-m seed=3,4 hydra.sweep.dir=<sweep dir of -m seed=1,2>", "of other overrides"),
]
#: the same rule protects a training run from ``trainlab-eval`` writing its metrics.json into it
EVAL_CASES = [("ckpt_path=<old run>/checkpoints/last.ckpt hydra.run.dir=<old run>", "already holds a completed run")]

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime in ns)}`` of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def refused(args: list[str], cwd: Path, prog: str = "trainlab-train") -> str:
    """Run a command that must be refused: exit 2, one line on stderr, no traceback; return that line."""
    proc = subprocess.run([str(BIN / prog), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, f"{args} exited {proc.returncode}\n{out[-4000:]}"
    assert "Traceback" not in out, out[-4000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: ")
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A completed one-epoch run, as a user starts it, into a directory named on the command line."""
    root = tmp_path_factory.mktemp("finished")
    run_cli(["trainlab-train", "trainer.max_epochs=1", f"hydra.run.dir={root / 'run'}"], cwd=root)
    return root / "run"


@pytest.fixture
def old_run(finished_run, tmp_path) -> Path:
    """This test's own copy of the finished run (files, bytes and modification times)."""
    copy = tmp_path / "old"
    shutil.copytree(finished_run, copy, copy_function=shutil.copy2)
    assert {"config.yaml", "metrics.json", "train.log", ".hydra/config.yaml", "checkpoints/last.ckpt"} <= set(
        snapshot(copy)
    )
    return copy


OLD_RUN_CASES = [("trainlab-train", a, m) for a, m in CASES if "<old run>" in a] + [
    ("trainlab-eval", a, m) for a, m in EVAL_CASES
]


@pytest.mark.slow
@pytest.mark.parametrize(("prog", "args", "message"), OLD_RUN_CASES, ids=[a for _, a, _ in OLD_RUN_CASES])
def test_a_refused_command_leaves_the_earlier_run_byte_identical(old_run, tmp_path, prog, args, message):
    before = snapshot(old_run)
    line = refused(args.replace("<old run>", str(old_run)).split(), cwd=tmp_path, prog=prog)
    assert message in line, line
    if "already holds" in message:  # names the setting, its value and the ways on
        assert f"hydra.run.dir={old_run} " in line
        trains = prog == "trainlab-train"  # eval's run directory is its own: it neither resumes nor overwrites
        assert (f"continue it with ckpt_path={old_run}/checkpoints/last.ckpt" in line) == trains
        assert ("replace it with overwrite=true" in line) == trains
    assert snapshot(old_run) == before  # every file: bytes and modification time; no file added
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and old_run not in p.parents]  # nor anywhere else


@pytest.mark.slow
def test_the_refused_diverging_command_does_diverge_in_a_new_directory(tmp_path):
    """The third case of CASES is a run that diverges in its first steps (so, before the fix, it rewrote the
    earlier run's metrics.json with status diverged)."""
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), f"hydra.run.dir={tmp_path / 'new'}", "optimizer=sgd", "optimizer.lr=1e30"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "new" / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["epochs"] == 0
    assert int(re.search(r"NaN/inf at step (\d+) \(epoch 0\)", metrics["error"]).group(1)) <= 2


@pytest.mark.slow
def test_overwrite_true_runs_in_the_directory_of_an_earlier_run(old_run, tmp_path):
    before = snapshot(old_run)
    run_cli(["trainlab-train", "trainer.max_epochs=2", f"hydra.run.dir={old_run}", "overwrite=true"], cwd=tmp_path)
    metrics = json.loads((old_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert snapshot(old_run)["metrics.json"] != before["metrics.json"]
    assert not (old_run / "run.lock").exists()


@pytest.mark.slow
def test_resuming_in_its_own_directory_continues_the_run_and_keeps_the_earlier_files(old_run, tmp_path):
    before = snapshot(old_run)
    run_cli(
        [
            "trainlab-train",
            "trainer.max_epochs=2",
            f"hydra.run.dir={old_run}",
            f"ckpt_path={old_run}/checkpoints/last.ckpt",
        ],
        cwd=tmp_path,
    )
    metrics = json.loads((old_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    after = snapshot(old_run)
    for name in ("config.yaml", "metrics.json", "csv/metrics.csv"):  # the earlier run's, kept byte for byte
        assert after[f"{name}.1"][0] == before[name][0]
        assert after[name][0] != before[name][0]
    assert not (old_run / "run.lock").exists()


@pytest.mark.slow
def test_a_second_run_into_the_directory_of_a_run_in_progress_is_refused(tmp_path):
    busy = tmp_path / "busy"
    first = subprocess.Popen(
        [str(BIN / "trainlab-train"), "trainer.max_epochs=200", f"hydra.run.dir={busy}"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 240
        while not (busy / "config.yaml").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None and (busy / "config.yaml").exists(), "the first run did not start"
        before = {k: v for k, v in snapshot(busy).items() if k == "config.yaml" or k.startswith(".hydra")}
        line = refused(["trainer.max_epochs=1", f"hydra.run.dir={busy}"], cwd=tmp_path)
        assert f"hydra.run.dir={busy} is in use by another run (pid {first.pid}" in line
        assert {k: v for k, v in snapshot(busy).items() if k in before} == before
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
    assert not (busy / "run.lock").exists()  # released when the run ended


@pytest.mark.slow
def test_a_multirun_rerun_into_its_sweep_dir_runs_only_the_jobs_not_completed(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["trainlab-train", "-m", "seed=1,2", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"]
    run_cli(command, cwd=tmp_path)
    (sweep / "1" / "metrics.json").unlink()  # job 1 was killed before it finished
    job0 = snapshot(sweep / "0")
    proc = run_cli(command, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert f"skipped {sweep}/0 (seed=1 trainer.max_epochs=1): it completed already, val/acc_best=" in out
    assert snapshot(sweep / "0") == job0  # not one byte or timestamp of the finished job changed
    assert json.loads((sweep / "1" / "metrics.json").read_text())["status"] == "completed"
    assert out.count("Starting training") == 1  # only job 1 trained
    # another sweep into the same directory would overwrite the finished jobs: refused before job 0
    jobs = {job: snapshot(sweep / job) for job in ("0", "1")}
    line = refused(["-m", "seed=3,4", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert f"hydra.sweep.dir={sweep}: job {sweep}/0 already holds a completed run" in line
    assert "of other overrides (seed=1 trainer.max_epochs=1, not seed=3 trainer.max_epochs=1)" in line
    assert {job: snapshot(sweep / job) for job in ("0", "1")} == jobs


# ---- the rules, without a run ----
def test_only_run_files_make_a_directory_an_earlier_run(tmp_path):
    assert run_dir.earlier_run(tmp_path / "missing") is None
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("a: 1\n")
    (tmp_path / "train.log").write_text("refused\n")
    assert run_dir.earlier_run(tmp_path) is None  # what Hydra writes for a refused command
    (tmp_path / "checkpoints").mkdir()
    assert run_dir.earlier_run(tmp_path) is None
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert run_dir.earlier_run(tmp_path) == "an earlier run's files (checkpoints/)"
    (tmp_path / "metrics.json").write_text('{"status": "interrupted"}')
    assert run_dir.earlier_run(tmp_path) == "an interrupted run (metrics.json, checkpoints/)"


def test_the_lock_is_exclusive_and_a_dead_holders_lock_is_taken_over(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "run.lock").write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(run_dir.RunDirBusy, match=f"pid {sleeper.pid}"):
            run_dir.acquire_lock(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    lock = run_dir.acquire_lock(tmp_path)  # its holder is gone (kill -9): taken over
    assert lock.read_text().split()[0] == str(os.getpid())
    run_dir.release_lock(lock)
    assert not lock.exists()
