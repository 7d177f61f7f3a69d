"""What a run writes and prints: the config tree on screen, ``config.yaml``, ``metrics.json`` and its summary, the
hyperparameters sent to the loggers, the thread count. Imported by the entry points after Hydra has parsed the
command line (it imports torch)."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.loggers import Logger

log = logging.getLogger("trainlab")


class _LightningNoise(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: ... litlogger/litmodels``) and its note that our model summary
    callback replaces its default one: printed on every run, they say nothing about this run."""

    NOISE = ("💡 Tip:", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_LightningNoise())
# Lightning 2.6 calls torch's deprecated ``isinstance(treespec, LeafSpec)`` on every run: not ours to fix, not news
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)


def apply_extras(cfg: DictConfig, write: bool = True) -> None:
    """Warnings filter, thread count, config tree on screen; with ``write``, also ``config.yaml`` (write_config).

    ``trainlab-train`` passes ``write=False`` and writes ``config.yaml`` once every check has passed.
    """
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    threads = torch_threads(cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    if pl.utilities.rank_zero_only.rank != 0:
        return
    if write:
        write_config(cfg)
    if extras.get("print_config"):
        print_config_tree(cfg)


def write_config(cfg: DictConfig) -> Path:
    """``config.yaml`` (the resolved config) in the run directory: the first file a run writes, once every check
    has passed. A run resuming from a checkpoint inside its own directory first keeps the earlier run's files that
    it replaces as ``<name>.<k>`` (:func:`trainlab.run_dir.keep_earlier`)."""
    from trainlab.run_dir import inside, keep_earlier

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("train") and inside(cfg.get("ckpt_path"), out):
        kept = keep_earlier(out)
        if kept:
            log.info(f"resuming in its own directory: the earlier run's {', '.join(p.name for p in kept)} are kept")
    path = out / "config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def torch_threads(cfg: DictConfig) -> int | None:
    """The intra-op thread count ``extras.threads`` asks for; ``None`` leaves torch's default.

    ``auto``: torch's default (all cores, or ``OMP_NUM_THREADS``), except for several CPU training processes on one
    machine (``trainer.accelerator=cpu`` with ``trainer.devices`` > 1): each gets ``cores // processes`` threads.
    """
    threads = (cfg.get("extras") or {}).get("threads", "auto")
    if threads in (None, "auto"):
        trainer = cfg.get("trainer") or {}
        devices = trainer.get("devices", 1)
        processes = devices if isinstance(devices, int) else 1
        if isinstance(devices, list | ListConfig):
            processes = len(devices)
        if trainer.get("accelerator") == "cpu" and processes > 1 and not os.environ.get("OMP_NUM_THREADS"):
            return max(1, (os.cpu_count() or 1) // processes)
        return None
    from trainlab.settings import module_settings

    problem = module_settings("trainlab.console")["extras.threads"].problem("extras.threads", threads)
    if problem:
        raise ValueError(problem)
    return threads


def print_config_tree(cfg: DictConfig) -> None:
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key), style="bold")
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text.rstrip() or "{}", "yaml"))
    rich.print(tree)


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs: flushes an offline run to disk, and lets the next job of a multirun start its own run
    (Lightning's WandbLogger would otherwise attach to the run still in progress)."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger" and getattr(lg, "_experiment", None) is not None:
            lg.experiment.finish()


def log_hyperparameters(cfg: DictConfig, module: pl.LightningModule, loggers: list[Logger]) -> None:
    """Send the resolved config (as a nested hierarchy) and the parameter count to every logger."""
    if not loggers:
        return
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams.pop("extras", None)
    hparams["params/total"] = sum(p.numel() for p in module.parameters())
    hparams["params/trainable"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    for lg in loggers:
        lg.log_hyperparams(hparams)


def as_number(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def write_metrics(cfg: DictConfig, metrics: Mapping[str, Any]) -> Path:
    """``metrics.json`` in the run directory; also printed as a short summary.

    Written whole or not at all (a temporary file renamed into place): a run killed while writing it leaves the
    earlier ``metrics.json``, never a cut-off one.
    """
    path = Path(cfg.paths.output_dir) / "metrics.json"
    clean = {k: as_number(v) for k, v in metrics.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    width = max(len(k) for k in clean)
    lines = [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}" for k, v in clean.items()]
    print(f"\n{cfg.task_name} summary ({path}):\n" + "\n".join(lines), file=sys.stderr)
    return path


def record_failure(cfg: DictConfig, err: BaseException) -> None:
    """``metrics.json`` with ``status: failed`` and the error, for a job of a multirun that raised."""
    path = Path(cfg.paths.output_dir) / "metrics.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        facts = {"status": "failed", "error": f"{type(err).__name__}: {err}", "seed": cfg.get("seed")}
        path.write_text(json.dumps(facts, indent=2) + "\n")
    except OSError as write_err:  # an unwritable run dir: the log has the error already
        log.error(f"could not write {path}: {write_err}")
