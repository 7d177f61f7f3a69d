"""trainlab-train: fit a model, test its best checkpoint, write metrics.json.

    trainlab-train                                  # MLP on the embedded digits data set
    trainlab-train model=cnn optimizer=nesterov     # swap config groups
    trainlab-train -m seed=1,2,3                    # one run per seed (Hydra multirun)
    trainlab-train --help                           # every group and option (answers without importing torch)

The story of a run: check the settings -> build data, model, trainer from the config -> write config.yaml ->
fit -> test the best checkpoint -> write metrics.json -> return the metric a sweeper optimises. What a technique
does after the fit (an ensemble's report, SWA's averaged checkpoint) is in its own callback, not here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import hydra
from omegaconf import DictConfig

from trainlab import CONFIG_DIR
from trainlab.console import console_script, refused_as_config_error, run_job
from trainlab.errors import DivergenceError, RunInterrupted

log = logging.getLogger("trainlab")


def check_before_writing(cfg: DictConfig) -> dict[str, Any] | None:
    """The settings (:func:`trainlab.validate.validate`), those handed to torch and Lightning
    (:func:`trainlab.library_settings.check_library_settings`) and the checkpoint to resume from
    (:func:`trainlab.checkpoints.check_resume`): :class:`~trainlab.errors.ConfigError` when unusable. Returns the
    checkpoint (``None`` without one).

    Run before anything of the run is written; also by :class:`trainlab.hydra_callbacks.RunDirGuard` before a
    resumed run reuses its directory, so that a refused command leaves the earlier run's files as they were.
    """
    from trainlab.checkpoints import check_resume
    from trainlab.validate import validate

    validate(cfg)  # every documented setting's type and range: before torch is imported or anything is written
    from trainlab.library_settings import check_library_settings

    check_library_settings(cfg)  # optimizer, scheduler, trainer...: against the library's signature and checks
    return check_resume(cfg)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test as ``cfg`` says; return the metrics also written to ``metrics.json``.

    Every check comes first (settings, checkpoint, data files, the model and trainer built from the settings);
    only then is the first file of the run written (``config.yaml``), so a refused run writes nothing.
    """
    check_before_writing(cfg)
    import pytorch_lightning as pl

    from trainlab import build, ddp, outputs, recipe

    outputs.apply_extras(cfg, write=False)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("recipe"):
        return recipe.run(cfg)

    with refused_as_config_error():  # a constructor's ValueError (or Lightning's): one line, exit 2
        log.info(f"Instantiating datamodule <{cfg.data._target_}>")
        datamodule = build.build_datamodule(cfg)
        log.info(f"Instantiating model <{cfg.model._target_}>")
        model = build.build_module(cfg)
        build.check_data(datamodule)
        trainer = build.build_trainer(cfg)
    if trainer.is_global_zero:  # every check passed: the run's first file
        outputs.write_config(cfg)
    outputs.log_hyperparameters(cfg, model, trainer.loggers)

    with outputs_on_exit(cfg, trainer) as metrics, ddp.children_join_this_run(trainer):
        if cfg.get("train"):
            metrics.update(fit(cfg, trainer, model, datamodule))
        if cfg.get("test"):
            metrics.update(test(trainer, model, datamodule, metrics.get("best_ckpt")))
    return metrics


def fit(cfg: DictConfig, trainer, model, datamodule) -> dict[str, Any]:
    """Fit (resuming from ``cfg.ckpt_path`` if set); the train/val metrics, the time, the checkpoints, why it ended."""
    log.info("Starting training")
    start = time.perf_counter()
    weights_only = not cfg.get("trust_checkpoint")  # only the user's explicit trust unpickles arbitrary objects
    trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=weights_only)
    metrics: dict[str, Any] = {"train_seconds": round(time.perf_counter() - start, 3)}
    metrics.update({k: v for k, v in trainer.callback_metrics.items() if k.split("/")[0] in ("train", "val")})
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint else ""
    # a technique whose result is another checkpoint than the best epoch (SWA's average) names it
    best = next((c.result_checkpoint for c in trainer.callbacks if getattr(c, "result_checkpoint", None)), best)
    metrics.update(
        stop_reason=stop_reason(trainer),
        best_ckpt=best or None,
        last_ckpt=(checkpoint.last_model_path if checkpoint else "") or None,
    )
    return metrics


def test(trainer, model, datamodule, best_ckpt: str | None) -> dict[str, Any]:
    """Test ``best_ckpt`` (the current weights without one); the test metrics and what the callbacks add."""
    if best_ckpt:
        log.info(f"Testing the best checkpoint: {best_ckpt}")
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best_ckpt, weights_only=True)
    else:
        log.warning("No best checkpoint was saved (no ModelCheckpoint, or fast_dev_run): testing current weights")
        trainer.test(model=model, datamodule=datamodule)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    for callback in trainer.callbacks:  # e.g. an ensemble's report: members, their mean, the gain
        metrics.update(getattr(callback, "run_metrics", None) or {})
    return metrics


@contextmanager
def outputs_on_exit(cfg: DictConfig, trainer) -> Iterator[dict[str, Any]]:
    """Yield the run's metrics dict; on exit write ``metrics.json`` with the run's status: ``completed``,
    ``diverged`` (re-raised), or ``interrupted`` (as :class:`RunInterrupted`, with the checkpoint to resume from)."""
    from trainlab import outputs
    from trainlab.callbacks.interrupt import GracefulInterrupt

    metrics: dict[str, Any] = {}
    interrupt = next((c for c in trainer.callbacks if isinstance(c, GracefulInterrupt)), None)
    try:
        yield metrics
        metrics.update(status="completed")
        _after_run(cfg, trainer, metrics)
    except DivergenceError as err:
        metrics.update(status="diverged", stop_reason="divergence", error=str(err))
        _after_run(cfg, trainer, metrics)
        raise
    except (KeyboardInterrupt, SystemExit):
        if interrupt is None or interrupt.saved is None:
            raise
        saved = interrupt.saved
        metrics.update(
            status="interrupted",
            stop_reason=f"signal {int(interrupt.signal)}",
            interrupted_ckpt=str(saved),
            resume=f"ckpt_path={saved}",
        )
        _after_run(cfg, trainer, metrics)
        raise RunInterrupted(int(interrupt.signal), saved) from None
    finally:
        outputs.finish_loggers(trainer.loggers)


def _after_run(cfg: DictConfig, trainer, metrics: dict[str, Any]) -> None:
    """The run's facts and learning curves into ``metrics``, then ``metrics.json`` (process 0)."""
    from trainlab import outputs
    from trainlab.checkpoints import checkpoint_epoch

    if metrics["status"] == "completed":
        metrics["best_epoch"] = checkpoint_epoch(metrics.get("best_ckpt"))
        history = getattr(trainer.lightning_module, "history", None)
        history = list(history.epochs) if history is not None else []
        if history and trainer.is_global_zero and (cfg.get("extras") or {}).get("curves", True):
            from pathlib import Path

            from trainlab.curves import diagnose, plot_curves

            metrics["diagnosis"] = diagnose(history)
            plot_curves(history, Path(cfg.paths.output_dir) / "curves.png", title=metrics["diagnosis"])
    metrics.update(
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        seed=cfg.get("seed"),
        optimized_metric=cfg.get("optimized_metric"),
    )
    if trainer.is_global_zero:
        outputs.write_metrics(cfg, _ordered(metrics))


def stop_reason(trainer) -> str:
    """Why fit ended: ``early_stopping`` (patience ran out), ``max_epochs``/``max_steps``, or ``other``."""
    from pytorch_lightning.callbacks import EarlyStopping

    if any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks):
        return "early_stopping"
    if trainer.max_epochs is not None and trainer.max_epochs >= 0 and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
        return "max_steps"
    return "other"


def _ordered(metrics: dict[str, Any]) -> dict[str, Any]:
    order = ["status", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"]
    head = {k: metrics[k] for k in order if k in metrics}
    tail = ["stop_reason", "best_epoch", "best_ckpt", "last_ckpt", "epochs", "steps", "seed", "optimized_metric"]
    body = {k: v for k, v in metrics.items() if k not in head and k not in tail}
    return head | body | {k: metrics[k] for k in tail if k in metrics}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_job(train, cfg)


def cli() -> None:
    """``trainlab-train``: the command line is checked (unknown options and settings: exit 2) before Hydra runs."""
    console_script("trainlab-train", main, "train")


if __name__ == "__main__":
    cli()
