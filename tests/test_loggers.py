"""Each logger writes its files in the run directory; W&B works offline and never sees the API key."""

from __future__ import annotations

import csv
import json
import struct
import time
from pathlib import Path

import pytest
import yaml

from trainlab.loggers.wandb import resolve_mode
from trainlab.train import train

from .conftest import run_cli

RUN = ["trainer.max_epochs=2", "test=false"]


def read_wandb_records(run_file: Path) -> list:
    """Decode a ``run-*.wandb`` file: a 7-byte header, then LevelDB-log framed protobuf ``Record``s
    (32 KiB blocks; each chunk: crc32c(4) length(2, little endian) type(1): 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    block, pos, records, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written
            break
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            break
        pending += chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def complete_records(run_file: Path, timeout: float = 30.0) -> list:
    """The run file's records once W&B has finished writing it (its last record is ``exit``): the W&B service
    writes offline runs asynchronously, so ``finish()`` can return a moment before the file is complete."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_records(run_file)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def wandb_run(run_dir: Path) -> dict:
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    history, config, run = [], {}, None
    for record in complete_records(files[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "run":
            run = record.run
            config.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in run.config.update})
        elif kind == "config":
            config.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in record.config.update})
    return {"history": history, "config": config, "run": run}


def test_csv_logger_writes_metrics_and_nested_hparams(make_cfg, tmp_path):
    train(make_cfg(*RUN, "logger=csv"))
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    train_loss = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(val) == 2 and len(train_loss) == 2 and train_loss[1] < train_loss[0]
    hparams = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())
    assert hparams["model"]["width"] == 256 and hparams["optimizer"]["lr"] == 0.001  # a hierarchy, not flat keys
    assert hparams["params/total"] == 64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_tensorboard_logger_writes_scalars(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(*RUN, "logger=tensorboard"))
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert {"train/loss", "val/acc", "val/acc_best"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("val/acc")) == 2


def test_wandb_runs_offline_without_an_account_and_logs_val_acc(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no `wandb login` either
    metrics = train(make_cfg(*RUN, "logger=wandb", "tags=[unit,offline]"))
    run = wandb_run(tmp_path)
    val = [h["val/acc"] for h in run["history"] if "val/acc" in h]
    assert len(val) == 2 and val[-1] == pytest.approx(float(metrics["val/acc"]))
    assert run["config"]["model"]["width"] == 256  # the config arrives as a hierarchy
    assert run["config"]["optimizer"]["_target_"] == "torch.optim.Adam"
    assert list(run["run"].tags) == ["unit", "offline"]
    assert run["run"].project == "trainlab"


def test_many_writes_all_three(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    train(make_cfg(*RUN, "logger=many"))
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert list(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))


def test_wandb_mode_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert resolve_mode(None) == "offline"  # no account: offline
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode(None) == "online"  # a key: online
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(None) == "offline"  # WANDB_MODE wins over the key
    assert resolve_mode("disabled") == "disabled"  # an explicit logger.wandb.mode wins over everything
    with pytest.raises(ValueError, match="online, offline, disabled"):
        resolve_mode("sometimes")


@pytest.mark.slow
def test_wandb_multirun_shares_a_group_and_never_stores_the_key(tmp_path):
    """Neither the W&B key, nor another secret in the environment, nor a .env file's contents reach any file
    (configs, logs, checkpoints, the W&B run) of a multirun."""
    secret = "trainlab-test-secret-" + "k" * 19
    env_secret, dotenv_secret = "trainlab-env-token-" + "e" * 12, "trainlab-dotenv-token-" + "d" * 12
    (tmp_path / ".env").write_text(f"SERVICE_TOKEN={dotenv_secret}\nWANDB_API_KEY={dotenv_secret}\n")
    run_cli(
        [
            "trainlab-train",
            "-m",
            "seed=1,2",
            "logger=wandb",
            "trainer.max_epochs=1",
            "test=false",
            "trainer.enable_progress_bar=false",
            "extras.print_config=false",
        ],
        cwd=tmp_path,
        env={"WANDB_API_KEY": secret, "WANDB_MODE": "offline", "SERVICE_TOKEN": env_secret},
    )
    jobs = sorted(p for p in (tmp_path / "logs/train/multiruns").glob("*/*") if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    groups = {wandb_run(j)["run"].run_group for j in jobs}
    assert groups == {jobs[0].parent.name}  # one group, named after the sweep directory
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".env"]
    assert any(p.suffix == ".ckpt" for p in files) and any(p.suffix == ".wandb" for p in files)
    for path in files:
        data = path.read_bytes()
        for leaked in (secret, env_secret, dotenv_secret):
            assert leaked.encode() not in data, f"a secret leaked into {path}"
