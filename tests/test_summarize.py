"""`python -m trainlab.summarize`: one row per setting, averaged over seeds, failed jobs counted."""

from __future__ import annotations

import json

import pytest
import yaml

from trainlab.summarize import collect, main


def fake_job(root, num, overrides, acc=None):
    job = root / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if acc is not None:
        (job / "metrics.json").write_text(json.dumps({"test/acc": acc}))


def test_rows_group_seeds_and_drop_shared_overrides(tmp_path, capsys):
    fake_job(tmp_path, 0, ["optimizer=sgd", "seed=1", "logger=none"], 0.90)
    fake_job(tmp_path, 1, ["optimizer=sgd", "seed=2", "logger=none"], 0.94)
    fake_job(tmp_path, 2, ["optimizer=adam", "seed=1", "logger=none"], 0.96)
    fake_job(tmp_path, 3, ["optimizer=adam", "seed=2", "logger=none"])  # crashed: no metrics.json
    rows = collect(tmp_path, "test/acc")
    assert [(r["setting"], r["values"], r["failed"]) for r in rows] == [
        ("optimizer=sgd", [0.90, 0.94], 0),
        ("optimizer=adam", [0.96], 1),
    ]
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| `optimizer=sgd` | 0.9200 ± 0.0283 | 2 | 0 |" in out
    assert "| `optimizer=adam` | 0.9600 ± 0.0000 | 1 | 1 |" in out


@pytest.mark.slow
def test_a_failing_job_of_a_multirun_does_not_stop_the_others(tmp_path, capsys):
    """model.width=0 raises in job 1; jobs 0 and 2 still run, and the summary names job 1's error."""
    from .conftest import QUIET, run_cli

    run_cli(["trainlab-train", "-m", "model.width=32,0,16", "trainer.max_epochs=1", *QUIET], cwd=tmp_path)
    (sweep,) = (tmp_path / "logs/train/multiruns").iterdir()
    statuses = [json.loads((sweep / str(i) / "metrics.json").read_text())["status"] for i in range(3)]
    assert statuses == ["completed", "failed", "completed"]
    error = json.loads((sweep / "1" / "metrics.json").read_text())["error"]
    assert error.startswith("ConfigError: invalid settings") and "model.width=0" in error
    assert "this job failed, the sweep goes on" in (sweep / "1" / "train.log").read_text()  # with the traceback
    main([str(sweep)])
    out = capsys.readouterr().out
    assert "| `model.width=0` | nan ± 0.0000 | 0 | 1 |" in out
    assert "- `model.width=0` job 1: ConfigError: invalid settings" in out
