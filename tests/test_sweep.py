"""Steps 4 and 5 of the recipe: random / grid / fine searches with Optuna, failed trials, resumed sweeps, the report."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from trainlab.sweep import SweepConfigError, best_row, distributions, read_csv, resolve_center

from .conftest import BIN, QUIET, run_cli

FAST = ["trainer.max_epochs=1", *QUIET]


# ---- the search space, exactly ----
def test_center_and_factor_give_a_log_uniform_range_of_that_width():
    (dist,) = distributions({"optimizer.lr": {"center": 1e-3, "factor": 30, "log": True}}).values()
    assert dist.low == pytest.approx(1e-3 / 30) and dist.high == pytest.approx(1e-3 * 30) and dist.log


def test_grid_points_are_evenly_spaced_on_a_log_scale():
    grid = distributions({"wd": {"low": 1e-6, "high": 1e-2, "log": True, "points": 5}}, grid=True)
    assert grid["wd"] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    grid = distributions({"p": {"low": 0.0, "high": 0.5, "points": 3}, "act": {"choices": ["relu", "tanh"]}}, grid=True)
    assert grid == {"p": pytest.approx([0.0, 0.25, 0.5]), "act": ["relu", "tanh"]}


def test_a_range_can_be_centred_on_lr_find_or_on_a_finished_sweep(tmp_path):
    (tmp_path / "lr_find.json").write_text(json.dumps({"suggested_lr": 0.0025}))
    assert resolve_center(str(tmp_path / "lr_find.json"), "optimizer.lr") == 0.0025
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "sweep.csv").write_text(
        "trial,status,optimizer.lr,value\n0,completed,0.01,0.90\n1,completed,0.003,0.95\n2,failed,0.5,\n"
    )
    (dist,) = distributions({"optimizer.lr": {"center": 1.0, "around": str(sweep), "factor": 3, "log": True}}).values()
    assert (dist.low, dist.high) == (pytest.approx(0.001), pytest.approx(0.009))  # around the best trial, 0.003


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"low": 1e-2, "high": 1e-4, "log": True}, "low=0.01 must be below high=0.0001"),
        ({"low": 0.0, "high": 1.0, "log": True}, "a log range needs low > 0"),
        ({"center": 1e-3, "factor": 0.5, "log": True}, "factor=0.5 must be > 1"),
        ({"centre": 1e-3}, r"unknown settings \['centre'\]"),
        ({"log": True}, "give low and high, center"),
        ({"center": "no/such/file.json"}, "neither a number, an lr_find.json nor a sweep directory"),
    ],
)
def test_a_bad_search_space_names_the_setting(spec, message):
    with pytest.raises(SweepConfigError, match=message) as err:
        distributions({"optimizer.lr": spec})
    assert "optimizer.lr" in str(err.value)


# ---- sweeps through the command line ----
def sweep_dir(tmp_path: Path, study: str) -> Path:
    return tmp_path / "logs" / "hparams_search" / "sweeps" / study


def metrics_of(row: dict) -> dict:
    return json.loads((Path(row["run_dir"]) / "metrics.json").read_text())


@pytest.mark.slow
def test_coarse_random_search_writes_the_report_and_resumes_with_a_larger_budget(tmp_path):
    args = ["trainlab-train", "-m", "hparams_search=coarse", *FAST]
    run_cli([*args, "hydra.sweeper.n_trials=3"], cwd=tmp_path)
    out = sweep_dir(tmp_path, "coarse-digits-mlp")
    rows = read_csv(out / "sweep.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2"] and {r["status"] for r in rows} == {"completed"}
    for row in rows:  # log-uniform draws inside centre/30 .. centre*30, each trial's value from its own run
        assert 1e-3 / 30 <= float(row["optimizer.lr"]) <= 1e-3 * 30
        assert 1e-4 / 30 <= float(row["optimizer.weight_decay"]) <= 1e-4 * 30
        assert float(row["value"]) == pytest.approx(metrics_of(row)["val/acc_best"])
        assert Path(row["run_dir"]) == out / row["trial"] and metrics_of(row)["epochs"] == 1
    assert len({r["optimizer.lr"] for r in rows}) == 3
    table = (out / "sweep.md").read_text().splitlines()
    best = best_row(rows)
    assert f"Best: trial {best['trial']}" in table[2]
    values = [float(line.split("|")[4]) for line in table if line.startswith("| ") and line[2].isdigit()]
    assert values == sorted(values, reverse=True) and len(values) == 3
    assert (out / "sweep.png").stat().st_size > 10_000 and (out / "optuna.db").is_file()

    # the same command with a larger budget continues the study: the first trials are kept, two new ones run
    run_cli([*args, "hydra.sweeper.n_trials=5"], cwd=tmp_path)
    more = read_csv(out / "sweep.csv")
    assert [r["trial"] for r in more] == ["0", "1", "2", "3", "4"] and more[:3] == rows
    assert not {r["optimizer.lr"] for r in more[3:]} & {r["optimizer.lr"] for r in rows}  # no repeated draws

    # another setting under the same study name is refused (exit 1, nothing run)
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), "-m", "hparams_search=coarse", *FAST, "model.width=32"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode != 0 and "hydra.sweeper.study_name=<new name>" in proc.stderr
    assert len(read_csv(out / "sweep.csv")) == 5


@pytest.mark.slow
def test_grid_search_tries_every_point_of_the_grid(tmp_path):
    run_cli(["trainlab-train", "-m", "hparams_search=grid", "hparams_search.points=2", *FAST], cwd=tmp_path)
    rows = read_csv(sweep_dir(tmp_path, "grid-digits-mlp") / "sweep.csv")
    tried = {(float(r["optimizer.lr"]), float(r["optimizer.weight_decay"])) for r in rows}
    expected = set(itertools.product([1e-3 / 30, 1e-3 * 30], [1e-4 / 30, 1e-4 * 30]))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert all(any(math.isclose(a, x) and math.isclose(b, y) for x, y in expected) for a, b in tried)
    assert len(tried) == 4


@pytest.mark.slow
def test_a_crashing_or_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    """Grid over width {32, 0} x SGD lr {0.1, 1e4}: width 0 raises, lr 1e4 diverges, one trial completes."""
    run_cli(
        [
            "trainlab-train",
            "-m",
            "hydra/sweeper=trainlab",
            "hydra.sweeper.sampler=grid",
            "optimizer=sgd",
            "model.width=32,0",
            "optimizer.lr=0.1,1e4",
            *FAST,
        ],
        cwd=tmp_path,
    )
    (out,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    rows = {(r["model.width"], r["optimizer.lr"]): r for r in read_csv(out / "sweep.csv")}
    assert len(rows) == 4
    assert rows[("32", "0.1")]["status"] == "completed" and float(rows[("32", "0.1")]["value"]) > 0.2
    for lr in ("0.1", "10000.0"):
        crashed = rows[("0", lr)]
        assert crashed["status"] == "failed" and "model.width=0: units per hidden layer" in crashed["error"]
        assert metrics_of(crashed)["status"] == "failed"
    diverged = rows[("32", "10000.0")]
    assert diverged["status"] == "failed" and "NaN/inf" in diverged["error"]
    assert metrics_of(diverged)["status"] == "diverged"
    assert "failed" in (out / "sweep.md").read_text()


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_continues_where_it_stopped(tmp_path):
    args = [
        str(BIN / "trainlab-train"),
        "-m",
        "hparams_search=coarse",
        "hydra.sweeper.n_trials=3",
        *QUIET,
        "trainer.max_epochs=15",
        "hparams_search.lr=1e-4",
    ]  # slow learning: no early stop, trials take seconds
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = sweep_dir(tmp_path, "coarse-digits-mlp")
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 120
    while not (out / "1" / "checkpoints").exists() and time.time() < deadline:  # trial 1 is training
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_csv(out / "sweep.csv")
    assert [r["status"] for r in before] == ["completed"]

    run_cli([*args[:1], *args[1:]], cwd=tmp_path)
    rows = read_csv(out / "sweep.csv")
    assert rows[0] == before[0]
    killed = rows[1]
    assert killed["status"] == "failed" and "interrupted" in killed["error"]
    retried = [r for r in rows[2:] if r["optimizer.lr"] == killed["optimizer.lr"]]
    assert len(retried) == 1 and retried[0]["status"] == "completed"  # the cut-off trial's parameters, again
    assert sum(r["status"] == "completed" for r in rows) == 3 and len(rows) == 4  # the budget: 3 trials made


def test_sweeper_settings_are_checked_before_anything_runs():
    from trainlab.sweep import OptunaSweep

    with pytest.raises(SweepConfigError, match="sampler='bayes': choose one of random, tpe, grid"):
        OptunaSweep(sampler="bayes")
    with pytest.raises(SweepConfigError, match="n_trials=0"):
        OptunaSweep(n_trials=0)
    with pytest.raises(SweepConfigError, match="direction='up'"):
        OptunaSweep(direction="up")


def test_the_plugin_is_discovered_by_hydra():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    assert "TrainlabSweeper" in {p.__name__ for p in Plugins.instance().discover(Sweeper)}


@pytest.mark.slow
def test_fine_search_narrows_the_ranges_around_the_best_coarse_trial(tmp_path):
    coarse = tmp_path / "coarse"
    coarse.mkdir()
    (coarse / "sweep.csv").write_text(
        "trial,status,optimizer.lr,optimizer.weight_decay,value\n"
        "0,completed,0.03,0.001,0.80\n1,completed,0.003,3e-05,0.95\n2,failed,0.3,1e-06,\n"
    )
    run_cli(
        [
            "trainlab-train",
            "-m",
            "hparams_search=fine",
            f"hparams_search.around={coarse}",
            "hydra.sweeper.n_trials=2",
            *FAST,
        ],
        cwd=tmp_path,
    )
    out = sweep_dir(tmp_path, "fine-digits-mlp")
    rows = read_csv(out / "sweep.csv")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"completed"}
    for row in rows:  # centre/3 .. centre*3 around trial 1, the best
        assert 0.001 <= float(row["optimizer.lr"]) <= 0.009
        assert 1e-5 <= float(row["optimizer.weight_decay"]) <= 9e-5
    config = (out / "0" / ".hydra" / "config.yaml").read_text()
    assert "scheduler: null" in config  # step 5: no learning-rate decay


def test_best_prints_the_winning_trial_as_overrides(tmp_path, capsys):
    from trainlab.sweep import main

    (tmp_path / "sweep.csv").write_text(
        "trial,status,optimizer.lr,optimizer.weight_decay,value,val/acc_best,run_dir,error\n"
        "0,completed,0.01,0.001,0.80,0.80,/x/0,\n1,completed,0.003,3e-05,0.95,0.95,/x/1,\n2,failed,0.3,1e-06,,,/x/2,boom\n"
    )
    main(["best", str(tmp_path)])
    assert capsys.readouterr().out.split() == ["optimizer.lr=0.003", "optimizer.weight_decay=3e-05"]
