"""Every ``debug=`` option works on every shipped data set, run as a user types it.

The options are read from configs/debug/, the data sets from configs/data/ (not hand lists): a new option is tested
without touching this file, and a new data set fails here until it says how a test gets it offline. The data sets
that only download (MNIST, CIFAR) run on tiny files the test writes in their on-disk format (the readers are tested
on the same files in tests/test_datasets.py); Fashion-MNIST runs on the real files (``make data``), which must be
there under CI.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from trainlab import CONFIG_DIR

from .conftest import BIN, require_fashion_mnist
from .test_datasets import write_cifar10, write_cifar100, write_mnist

DEBUG_OPTIONS = sorted(p.stem for p in (Path(CONFIG_DIR) / "debug").glob("*.yaml"))
DATA_SETS = sorted(p.stem for p in (Path(CONFIG_DIR) / "data").glob("*.yaml"))
#: data sets that work without a network: embedded (None), or installed files (a function that skips without them)
OFFLINE = {"digits": None, "synthetic": None, "fashion_mnist": require_fashion_mnist}
#: download-only data sets: (writer of tiny files in their on-disk format, validation images to hold out of them)
TINY_FILES = {"mnist": (write_mnist, 10), "cifar10": (write_cifar10, 10), "cifar100": (write_cifar100, 100)}


def test_the_options_and_data_sets_are_found():
    assert {"default", "fdr", "limit", "overfit", "profiler"} <= set(DEBUG_OPTIONS)
    assert {"digits", "synthetic", "fashion_mnist"} <= set(DATA_SETS)
    unknown = set(DATA_SETS) - set(OFFLINE) - set(TINY_FILES)
    assert not unknown, f"say how a test gets data={sorted(unknown)} offline (OFFLINE or TINY_FILES)"


@pytest.mark.slow
@pytest.mark.parametrize("data", DATA_SETS)
@pytest.mark.parametrize("option", DEBUG_OPTIONS)
def test_debug_option_runs_on_the_data_set(tmp_path, option, data):
    args = [f"debug={option}", f"data={data}"]  # what a user types: progress bar, config tree, default callbacks
    if data in TINY_FILES:  # no network: its files, tiny, where a user would put them (<data_dir>)
        write, val_size = TINY_FILES[data]
        write(tmp_path / "data")
        args += [f"data.val_size={val_size}", "data.download=false"]
    elif OFFLINE[data] is not None:
        OFFLINE[data]()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "Traceback" not in output
    (path,) = (tmp_path / "logs" / "debug").rglob("metrics.json")
    metrics = json.loads(path.read_text())
    assert metrics["status"] == "completed" and "test/acc" in metrics
    if option == "fdr":
        assert metrics["steps"] == 1
    if option == "limit":  # at least one batch of every split, on every data set
        assert metrics["epochs"] == 3 and 3 <= metrics["steps"] <= 30 and "val/acc" in metrics
    if option == "profiler":
        assert "Profiler Report" in output
