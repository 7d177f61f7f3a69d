"""trainlab-train: fit a model, test its best checkpoint, write metrics.json.

    trainlab-train                                  # MLP on the embedded digits data set
    trainlab-train model=cnn optimizer=nesterov     # swap config groups
    trainlab-train -m seed=1,2,3                    # one run per seed (Hydra multirun)
    trainlab-train --help                           # every group and option (answers without importing torch)

The story: seed -> datamodule, model, callbacks, loggers, trainer from the config -> fit -> test the best
checkpoint -> metrics.json -> return the metric a sweeper optimises.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

#: configs/ at the repository root (the package is installed in editable mode from the repository)
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")

log = logging.getLogger("trainlab")


def check_before_writing(cfg: DictConfig) -> dict[str, Any] | None:
    """The settings (:func:`trainlab.validate.validate`) and the checkpoint to resume from (readable, and saved by
    the same architecture): :class:`ConfigError` when unusable. Returns the checkpoint (``None`` without one).

    Run before anything of the run is written; also by :class:`trainlab.hydra_callbacks.RunDirGuard` before a
    resumed run reuses its directory, so that a refused command leaves the earlier run's files as they were.
    """
    from trainlab.validate import ConfigError, validate

    validate(cfg)  # every documented setting's type and range: before torch is imported or anything is written
    if not cfg.get("ckpt_path"):
        return None
    from trainlab import run

    try:  # fail now, not after building everything, when it is unusable
        checkpoint = run.load_checkpoint(cfg.ckpt_path, trusted=cfg.get("trust_checkpoint") is True)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None
    saved = (checkpoint.get("trainlab") or {}).get("config")
    changes = run.architecture_changes(saved, cfg) if saved else []
    if changes:
        raise ConfigError(
            f"ckpt_path={cfg.ckpt_path} was saved by another model, optimizer or schedule, so its state does not fit "
            "this run: "
            + "; ".join(changes)
            + ". Resume with the checkpoint's settings (its config.yaml), or start a new run without ckpt_path"
        )
    from trainlab.classifier import schedule_resume_error

    problem = schedule_resume_error(checkpoint, (cfg.get("trainer") or {}).get("max_epochs"))
    if problem:
        raise ConfigError(problem)
    return checkpoint


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test as ``cfg`` says; return the metrics also written to ``metrics.json``.

    Every check comes first (settings, checkpoint, data files, the model and trainer built from the settings);
    only then is the first file of the run written (``config.yaml``), so a refused run writes nothing.
    """
    check_before_writing(cfg)
    import pytorch_lightning as pl

    from trainlab import run

    run.apply_extras(cfg, write=False)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    if cfg.get("recipe"):
        return run_recipe(cfg)
    log.info(f"Instantiating datamodule <{cfg.data._target_}>")
    datamodule = run.build_datamodule(cfg)
    log.info(f"Instantiating model <{cfg.model._target_}>")
    model = run.build_module(cfg)
    run.check_data(datamodule)
    callbacks = run.build_callbacks(cfg)
    from trainlab.callbacks.interrupt import GracefulInterrupt

    interrupt = GracefulInterrupt(Path(cfg.paths.output_dir) / "checkpoints")
    callbacks.append(interrupt)
    loggers = run.build_loggers(cfg)
    trainer: pl.Trainer = run.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=run.checkpoint_plugins(cfg)
    )
    if trainer.is_global_zero:  # every check passed: the run's first file
        run.write_config(cfg)
    run.log_hyperparameters(cfg, model, loggers)
    from trainlab.classifier import DivergenceError

    try:
        with _ddp_children_join_this_run(trainer):
            metrics = fit_and_test(cfg, trainer, model, datamodule)
    except DivergenceError as err:
        metrics = {"status": "diverged", "stop_reason": "divergence", "error": str(err)}
        metrics.update(_run_facts(cfg, trainer))
        if trainer.is_global_zero:
            run.write_metrics(cfg, metrics)
        raise
    except (KeyboardInterrupt, SystemExit):
        if interrupt.saved is None:
            raise
        metrics = {
            "status": "interrupted",
            "stop_reason": f"signal {int(interrupt.signal)}",
            "interrupted_ckpt": str(interrupt.saved),
            "resume": f"ckpt_path={interrupt.saved}",
        }
        metrics.update(_run_facts(cfg, trainer))
        if trainer.is_global_zero:
            run.write_metrics(cfg, metrics)
        raise RunInterrupted(int(interrupt.signal), interrupt.saved) from None
    finally:
        run.finish_loggers(loggers)
    if trainer.is_global_zero:
        run.write_metrics(cfg, _ordered(metrics))
    return metrics


RECIPES = ("initial_loss", "overfit", "lr_find")


def recipe_config(cfg: DictConfig) -> DictConfig:
    """The run config a recipe step measures: regularization off (steps 1 and 2), or small weight decay (step 3).

    Every step drops in-run ensembles (one model is checked). Steps 1 and 2 also drop every regularizer, the
    augmentation and the optimizer's weight decay, as the lecture says; step 3 keeps the model as configured and
    sets the optimizer's weight decay to ``recipe.weight_decay``.
    """
    from omegaconf import OmegaConf, open_dict

    name = cfg.recipe.get("name")
    if name not in RECIPES:
        raise ValueError(f"recipe={name!r} is not a recipe step; choose one of {', '.join(RECIPES)}")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        cfg.ensemble = None
        if name == "lr_find":
            weight_decay = cfg.recipe.get("weight_decay")
            if weight_decay is not None and "weight_decay" in cfg.optimizer:
                cfg.optimizer.weight_decay = weight_decay
        else:
            cfg.regularizer = {}
            cfg.augment = {}
            if "weight_decay" in cfg.optimizer:
                cfg.optimizer.weight_decay = 0.0
    return cfg


def run_recipe(cfg: DictConfig) -> dict[str, Any]:
    """``recipe=initial_loss|overfit|lr_find``: one step of the lecture's recipe, written to ``<step>.json``.

    Exits with status 1 (:class:`RecipeCheckFailed`) when a check fails, with the message saying which way.
    """
    import json

    from trainlab import recipe, run

    cfg = recipe_config(cfg)
    name = cfg.recipe.name
    out_dir = Path(cfg.paths.output_dir)
    datamodule = run.build_datamodule(cfg)
    model = run.build_module(cfg)
    datamodule.setup("fit")
    run.write_config(cfg)  # the settings, the data and the model are usable: the first file of the run
    if hasattr(model.preprocess, "fit"):
        model.preprocess.fit(datamodule.train_images())
    if name == "initial_loss":
        result = recipe.initial_loss(model, datamodule, int(cfg.recipe.batches), float(cfg.recipe.tolerance))
    elif name == "overfit":
        result = recipe.overfit_small_sample(
            model, datamodule, int(cfg.recipe.samples), int(cfg.recipe.max_epochs), float(cfg.recipe.target_acc)
        )
    else:
        trainer = run.instantiate(
            cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False, enable_model_summary=False
        )
        model.divergence_guard = False  # the range test drives the loss to divergence on purpose
        result, _ = recipe.lr_find(
            trainer,
            model,
            datamodule,
            min_lr=float(cfg.recipe.min_lr),
            max_lr=float(cfg.recipe.max_lr),
            num_training=int(cfg.recipe.num_training),
            mode=str(cfg.recipe.mode),
        )
        result["weight_decay"] = cfg.optimizer.get("weight_decay")
        recipe.plot_lr_find(result, out_dir / "lr_find.png")
        result["ok"] = result["suggested_lr"] is not None
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    (log.info if result["ok"] else log.error)(f"{name}: {result['message']} ({path})")
    if not result["ok"]:
        raise RecipeCheckFailed(result["message"])
    return result


class RunInterrupted(Exception):
    """ctrl-C, SIGTERM or SIGUSR1 stopped training; its state is in ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"interrupted by signal {signum}; continue with: ckpt_path={checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


class RecipeCheckFailed(RuntimeError):
    """A recipe check found a problem; its message says which and what to try."""


def fit_and_test(cfg: DictConfig, trainer, model, datamodule) -> dict[str, Any]:
    """Fit (resuming from ``cfg.ckpt_path`` if set), then test the best checkpoint."""
    metrics: dict[str, Any] = {}
    if cfg.get("train"):
        log.info("Starting training")
        start = time.perf_counter()
        weights_only = not cfg.get("trust_checkpoint")  # only the user's explicit trust unpickles arbitrary objects
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=weights_only)
        metrics["train_seconds"] = round(time.perf_counter() - start, 3)
        metrics.update({k: v for k, v in trainer.callback_metrics.items() if k.split("/")[0] in ("train", "val")})

    checkpoint = trainer.checkpoint_callback
    # read these now: testing restores the callbacks' state from the tested checkpoint, an older one
    best_ckpt = checkpoint.best_model_path if checkpoint else ""
    last_ckpt = checkpoint.last_model_path if checkpoint else ""
    stop_reason = _stop_reason(trainer) if cfg.get("train") else None
    swa_ckpt = next((c.swa_ckpt for c in trainer.callbacks if getattr(c, "swa_ckpt", None)), None)
    if swa_ckpt:  # SWA's result is the final average with recomputed BatchNorm statistics, not the best epoch
        best_ckpt = swa_ckpt
    # Testing with the same trainer, Lightning's WeightAveraging would load a checkpoint's raw weights
    # (current_model_state) into the model; the test is of the averaged weights (the checkpoint's state_dict).
    from pytorch_lightning.callbacks import WeightAveraging

    trainer.callbacks[:] = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]
    if cfg.get("test"):
        if best_ckpt:
            log.info(f"Testing the best checkpoint: {best_ckpt}")
            trainer.test(model=model, datamodule=datamodule, ckpt_path=best_ckpt, weights_only=True)
        else:
            log.warning("No best checkpoint was saved (no ModelCheckpoint, or fast_dev_run): testing current weights")
            trainer.test(model=model, datamodule=datamodule)
        metrics.update({k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
        if cfg.get("ensemble") and best_ckpt:
            from trainlab.ensembles import run_report

            report = run_report(cfg.ensemble.kind, trainer, model, datamodule, best_ckpt, last_ckpt)
            metrics.update(report)
            for logger in trainer.loggers:
                logger.log_metrics({k: v for k, v in report.items() if isinstance(v, float)})

    history = list(model.history.epochs)
    if history and trainer.is_global_zero and (cfg.get("extras") or {}).get("curves", True):
        from trainlab.curves import diagnose, plot_curves

        metrics["diagnosis"] = diagnose(history)
        plot_curves(history, Path(cfg.paths.output_dir) / "curves.png", title=metrics["diagnosis"])
    metrics.update(
        status="completed",
        stop_reason=stop_reason,
        best_epoch=_checkpoint_epoch(best_ckpt),
        best_ckpt=best_ckpt or None,
        last_ckpt=last_ckpt or None,
    )
    metrics.update(_run_facts(cfg, trainer))
    return metrics


def _run_facts(cfg: DictConfig, trainer) -> dict[str, Any]:
    return {
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "seed": cfg.get("seed"),
        "optimized_metric": cfg.get("optimized_metric"),
    }


def _stop_reason(trainer) -> str:
    """Why fit ended: ``early_stopping`` (patience ran out), ``max_epochs``/``max_steps``, or ``other``."""
    from pytorch_lightning.callbacks import EarlyStopping

    if any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0 for c in trainer.callbacks):
        return "early_stopping"
    if trainer.max_epochs is not None and trainer.max_epochs >= 0 and trainer.current_epoch >= trainer.max_epochs:
        return "max_epochs"
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
        return "max_steps"
    return "other"


def _checkpoint_epoch(path: str) -> int | None:
    """The epoch (0-based) a checkpoint was written at."""
    if not path:
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def _ordered(metrics: dict[str, Any]) -> dict[str, Any]:
    order = ["status", "train/loss", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/loss", "test/acc"]
    head = {k: metrics[k] for k in order if k in metrics}
    return head | {k: v for k, v in metrics.items() if k not in head}


#: environment variables Lightning sets in the process that launches the DDP children
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def _ddp_children_join_this_run(trainer) -> Iterator[None]:
    """Make DDP's child processes join this run's directory instead of starting runs of their own, and end with it.

    Lightning starts each extra DDP process by re-running this command line with ``hydra.run.dir`` set to
    ``hydra.run.dir`` of the parent. That is wrong under ``-m``: the job's directory is a sweep subdirectory, and
    the re-run command line still says ``-m``, so every child would start the whole sweep again (the "Hydra + DDP
    makes extra output directories" bug of other templates). Here the re-run command becomes this job's own
    overrides, and ``hydra.run.dir`` this job's output directory. The children append to the same log file
    (``<task_name>.log``) and, being non-zero ranks, write no checkpoints, metrics or logger files.

    The children belong to this run (:class:`trainlab.ddp.JobLauncher`): on exit they are waited for (a good run)
    or ended (a failed one, whichever rank failed), the process group is torn down and Lightning's environment
    variables are removed, so that the next job of a multirun launches its own children, and a failed job leaves no
    process behind. Under ``strategy=ddp_spawn`` the workers' state comes back to this process
    (:class:`trainlab.ddp.SpawnLauncher`).
    """
    from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    from trainlab import ddp

    launcher = getattr(trainer.strategy, "launcher", None)
    if isinstance(launcher, _MultiProcessingLauncher):
        trainer.strategy._launcher = ddp.SpawnLauncher.like(launcher)
        yield
        return
    if not (isinstance(launcher, _SubprocessScriptLauncher) and "LOCAL_RANK" not in os.environ):
        yield
        return
    launcher = trainer.strategy._launcher = ddp.JobLauncher.like(launcher)
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict, read_write

    argv = sys.argv
    if HydraConfig.initialized() and OmegaConf.select(HydraConfig.get(), "runtime.output_dir"):
        hydra_cfg = HydraConfig.get()
        with read_write(hydra_cfg), open_dict(hydra_cfg):
            hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
        sys.argv = [argv[0], *hydra_cfg.overrides.task]
    failed = True
    try:
        yield
        failed = False
    finally:
        sys.argv = argv
        launcher.end_children(failed)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key in _DDP_ENV:
            os.environ.pop(key, None)


def _record_failure(cfg: DictConfig, err: BaseException) -> None:
    """``metrics.json`` with ``status: failed`` and the error, for a job of a multirun that raised."""
    import json

    path = Path(cfg.paths.output_dir) / "metrics.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        facts = {"status": "failed", "error": f"{type(err).__name__}: {err}", "seed": cfg.get("seed")}
        path.write_text(json.dumps(facts, indent=2) + "\n")
    except OSError as write_err:  # an unwritable run dir: the log has the error already
        log.error(f"could not write {path}: {write_err}")


def run_job(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig, metric: str | None = None) -> float | None:
    """Run ``task`` (:func:`train`, ``trainlab.eval.evaluate``) as the Hydra job of a console script: every entry
    point maps failures to exit codes here, so that they all answer bad input alike.

    Bad settings or files (:class:`ConfigError`, ``FileNotFoundError``, ``DataFileError``): one line and exit 2, the
    empty run directory Hydra made is removed; in a multirun the job's ``metrics.json`` records the failure and the
    sweep goes on. Returns ``metrics[metric]`` (default: ``cfg.optimized_metric``) for a sweeper to optimise.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from trainlab.classifier import DivergenceError
    from trainlab.data.files import DataFileError
    from trainlab.validate import ConfigError

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        metrics = task(cfg)
    except (ConfigError, FileNotFoundError, DataFileError) as err:  # bad settings, or data files missing/corrupt
        if multirun:
            log.error(f"this job failed, the sweep goes on: {err}")
            _record_failure(cfg, err)
            return float("nan")
        if not _discard_refused_run_dir(cfg):
            log.error(str(err))  # the run directory is kept (it holds an earlier run): its log says why too
        job = HydraConfig.get().job.name if HydraConfig.initialized() else None  # "train"/"eval": its module
        print(f"{f'trainlab-{job}' if job else Path(sys.argv[0]).name}: {err}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as err:
        log.warning(f"{err} (metrics.json: status interrupted)")
        sys.exit(128 + err.signum)
    except RecipeCheckFailed:
        if multirun:
            return float("nan")
        sys.exit(1)
    except DivergenceError as err:
        log.error(str(err))
        if multirun:
            return float("nan")  # this job failed; the sweep goes on (its metrics.json says why)
        sys.exit(1)
    except Exception as err:
        if not multirun:
            raise
        # one failing job of a sweep does not stop the others; its metrics.json says why it failed
        log.exception(f"this job failed, the sweep goes on: {type(err).__name__}: {err}")
        _record_failure(cfg, err)
        return float("nan")
    value = metrics.get(metric or cfg.get("optimized_metric") or "")
    return None if value is None else float(value)


def _discard_refused_run_dir(cfg: DictConfig) -> bool:
    """Remove the run directory Hydra made for a refused command when it holds only Hydra's own files (``.hydra/``,
    ``<task_name>.log``): a refused command leaves nothing behind. A directory with anything else is left alone.
    Returns whether it was removed."""
    import shutil

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return False
    out = OmegaConf.select(HydraConfig.get(), "runtime.output_dir", default=None)
    if not out or not Path(out).is_dir():
        return False
    out = Path(out)
    hydra_own = {".hydra", f"{HydraConfig.get().job.name}.log", f"{cfg.get('task_name')}.log", "run.lock"}
    if any(p.name not in hydra_own for p in out.iterdir()):
        return False
    shutil.rmtree(out, ignore_errors=True)
    log_dir = Path(str(OmegaConf.select(cfg, "paths.log_dir", default=""))).resolve()
    for parent in out.resolve().parents:  # logs/<task>/runs/ and logs/ itself, when left empty
        if (parent != log_dir and log_dir not in parent.parents) or any(parent.iterdir()):
            break
        parent.rmdir()
        if parent == log_dir:
            break
    return True


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_job(train, cfg)


def console_script(prog: str, hydra_main: Callable[[], Any], config_name: str) -> None:
    """The checks every console script runs before Hydra, and its answer when Hydra cannot compose the command line.

    The command line is split with Hydra's own parser (:func:`trainlab.validate.check_command_line`): unknown
    options and settings exit 2 before anything is created; the log directory is checked only when a job will run
    (not for ``--help``, ``--cfg``, ``--info``, ``-sc``...). When Hydra fails to compose (exit 1), the reason is
    explained in one line with a suggestion, exit 2.
    """
    from trainlab.validate import ConfigError, check_command_line, check_log_dir

    args = sys.argv[1:]
    try:
        line = check_command_line(args, config_name=config_name)
        if line is not None and line.runs_job:
            check_log_dir(args)
    except ConfigError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        hydra_main()
    except SystemExit as exit_:
        if exit_.code == 1:  # Hydra could not compose the command line? Say why, with a suggestion
            from trainlab.validate import explain_override_error

            explanation = explain_override_error(args, config_name=config_name)
            if explanation:
                print(f"{prog}: invalid command line, nothing was run:\n  {explanation}", file=sys.stderr)
                sys.exit(2)
        raise


def cli() -> None:
    """``trainlab-train``: the command line is checked (unknown options and settings: exit 2) before Hydra runs."""
    console_script("trainlab-train", main, "train")


if __name__ == "__main__":
    cli()
