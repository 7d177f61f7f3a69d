"""trainlab-eval: test a checkpoint on the test split and write metrics.json.

    trainlab-eval ckpt_path=logs/train/runs/<run>/checkpoints/epoch_012.ckpt

The model and data configs come from the checkpoint (trainlab stores the resolved config in every checkpoint),
so the same network is rebuilt without repeating the training overrides. ``data.*`` / ``model.*`` given here are
applied on top, e.g. ``+data.batch_size=512``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from trainlab.train import CONFIG_DIR

log = logging.getLogger("trainlab")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    import pytorch_lightning as pl

    from trainlab import run

    checkpoint = run.load_checkpoint(cfg.ckpt_path)
    saved = (checkpoint.get("trainlab") or {}).get("config")
    if not saved:
        raise ValueError(
            f"ckpt_path={cfg.ckpt_path!r} carries no trainlab config (it was not written by trainlab-train), "
            "so the model to rebuild is unknown"
        )
    del checkpoint
    with open_dict(cfg):
        for key in run.MODEL_KEYS:
            cfg[key] = OmegaConf.merge(saved.get(key) or {}, cfg.get(key) or {}) if saved.get(key) else None
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
        trainer.test(model=model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    finally:
        run.finish_loggers(loggers)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["ckpt_path"] = str(cfg.ckpt_path)
    if trainer.is_global_zero:
        run.write_metrics(cfg, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    metrics = evaluate(cfg)
    return float(metrics["test/acc"])


if __name__ == "__main__":
    main()
