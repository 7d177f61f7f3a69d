"""trainlab-eval: test a checkpoint, or an ensemble of checkpoints, on the test split and write metrics.json.

    trainlab-eval ckpt_path=logs/train/runs/<run>/checkpoints/epoch_012.ckpt
    trainlab-eval ckpt_path=[a.ckpt,b.ckpt,c.ckpt]           # ensemble: mean of the members' probabilities
    trainlab-eval ckpt_path=logs/train/multiruns/<time>      # ensemble of every job's best checkpoint

The model and data configs come from the checkpoint (trainlab stores the resolved config in every checkpoint),
so the same network is rebuilt without repeating the training overrides. ``data.*`` / ``model.*`` given here are
applied on top, e.g. ``+data.batch_size=512``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from trainlab.train import CONFIG_DIR

log = logging.getLogger("trainlab")


def member_paths(ckpt_path: Any) -> list[str]:
    """The checkpoint files that ``ckpt_path`` names: one file, a list of files, or a multirun directory (the best
    checkpoint of every job, as its metrics.json records it)."""
    if isinstance(ckpt_path, (list, tuple, ListConfig)):
        return [str(p) for p in ckpt_path]
    path = Path(str(ckpt_path))
    if path.is_dir():
        jobs = sorted(path.glob("*/metrics.json"), key=lambda p: p.parent.name)
        paths = [json.loads(m.read_text()).get("best_ckpt") for m in jobs]
        paths = [p for p in paths if p]
        if not paths:
            raise FileNotFoundError(f"ckpt_path={str(path)!r}: no job directory with a best checkpoint in metrics.json")
        return paths
    return [str(path)]


def saved_config(run, path: str, trusted: bool = False) -> dict[str, Any]:
    saved = (run.load_checkpoint(path, trusted=trusted).get("trainlab") or {}).get("config")
    if not saved:
        raise ValueError(
            f"ckpt_path={path!r} carries no trainlab config (it was not written by trainlab-train), "
            "so the model to rebuild is unknown"
        )
    return saved


def with_saved_config(cfg: DictConfig, saved: dict[str, Any], keys) -> DictConfig:
    """``cfg`` with the checkpoint's model/data settings, and this command line's ``data.*``/``model.*`` on top."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in keys:
            cfg[key] = OmegaConf.merge(saved.get(key) or {}, cfg.get(key) or {}) if saved.get(key) else None
    return cfg


def evaluate(cfg: DictConfig) -> dict[str, Any]:

    paths = member_paths(cfg.ckpt_path)
    if len(paths) > 1:
        return evaluate_ensemble(cfg, paths)
    return evaluate_one(cfg, paths[0])


def evaluate_one(cfg: DictConfig, path: str) -> dict[str, Any]:
    import pytorch_lightning as pl

    from trainlab import run

    cfg = with_saved_config(cfg, saved_config(run, path, bool(cfg.get("trust_checkpoint"))), run.MODEL_KEYS)
    with open_dict(cfg):
        cfg.ckpt_path = path
    run.apply_extras(cfg)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = run.build_datamodule(cfg)
    model = run.build_module(cfg)
    loggers = run.build_loggers(cfg)
    trainer: pl.Trainer = run.instantiate(cfg.trainer, logger=loggers or False)
    run.log_hyperparameters(cfg, model, loggers)

    log.info(f"Testing {cfg.ckpt_path}")
    # the training callbacks (checkpointing, early stopping) have no role in testing
    warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint need to be provided.*")
    try:
        trainer.test(
            model=model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=not cfg.get("trust_checkpoint")
        )
    finally:
        run.finish_loggers(loggers)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["ckpt_path"] = str(cfg.ckpt_path)
    if trainer.is_global_zero:
        run.write_metrics(cfg, metrics)
    return metrics


def evaluate_ensemble(cfg: DictConfig, paths: list[str]) -> dict[str, Any]:
    """Average the members' class probabilities on the test split (the lecture's model ensemble).

    Each member is rebuilt from its own checkpoint (members may differ in anything but the data). Writes
    ``test/acc_members`` (each member's accuracy), ``test/acc_members_mean``, ``test/acc_ensemble`` (= ``test/acc``),
    ``test/loss_ensemble`` (cross-entropy of the averaged probabilities) and ``ensemble_gain`` (ensemble minus mean
    member), and sends the scalars to every logger.
    """
    import torch

    from trainlab import run

    configs = [saved_config(run, p, bool(cfg.get("trust_checkpoint"))) for p in paths]
    data = [OmegaConf.to_container(OmegaConf.create(c["data"])) for c in configs]
    if any(d != data[0] for d in data[1:]):
        raise ValueError(
            "ckpt_path: the ensemble's members were trained on different data settings; they must share them"
        )
    cfg = with_saved_config(cfg, configs[0], ("data",))
    run.apply_extras(cfg)
    datamodule = run.build_datamodule(cfg)
    datamodule.setup("test")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x_test, y_test = (t.to(device) for t in datamodule.splits["test"])

    from trainlab.ensembles import ensemble_report, test_probabilities

    member_probs = []
    for path, saved in zip(paths, configs, strict=True):
        module = run.build_module(with_saved_config(cfg, saved, run.MODEL_KEYS)).to(device)
        state = run.load_checkpoint(path, trusted=bool(cfg.get("trust_checkpoint")))["state_dict"]
        member_probs.append(test_probabilities(module, state, x_test, datamodule.eval_batch_size))
    report = ensemble_report(member_probs, y_test)
    for path, acc in zip(paths, report["test/acc_members"], strict=True):
        log.info(f"member {path}: test/acc {acc:.4f}")
    metrics: dict[str, Any] = {"test/acc": report["test/acc_ensemble"], **report, "ckpt_path": paths}
    loggers = run.build_loggers(cfg)
    for lg in loggers:
        lg.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        lg.save()
    run.finish_loggers(loggers)
    run.write_metrics(cfg, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    metrics = evaluate(cfg)
    return float(metrics["test/acc"])


def cli() -> None:
    """``trainlab-eval``: unknown options and settings on the command line exit 2 before Hydra runs."""
    import sys

    from trainlab.validate import ConfigError, check_command_line

    try:
        check_command_line(sys.argv[1:], config_name="eval")
    except ConfigError as err:
        print(f"trainlab-eval: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
