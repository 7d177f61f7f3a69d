"""Hydra callbacks (``hydra.callbacks.<name>._target_``): things to do around a whole run or multirun.

:class:`ActivationStatsFigure` draws the combined activation-statistics figure of a multirun once all its jobs have
finished; ``configs/experiment/init_study.yaml`` registers it. :class:`RunDirGuard` keeps a run from overwriting an
earlier run's directory; ``configs/hydra/default.yaml`` registers it.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger("trainlab")


class ActivationStatsFigure(Callback):
    """At the end of a multirun, write ``<sweep dir>/activation_stats.png`` from the jobs' ``activation_stats.json``
    (:func:`trainlab.activation_figures.combined_figure`). A failure is logged, never raised: the jobs are done."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            from trainlab.activation_figures import combined_figure

            combined_figure(Path(config.hydra.sweep.dir))
        except Exception as err:  # noqa: BLE001 - a figure must not fail a finished sweep
            log.warning(f"combined activation statistics figure failed: {type(err).__name__}: {err}")


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


class RunDirGuard(Callback):
    """Protects earlier runs' directories (configs/hydra/default.yaml registers it for every console script).

    * A run (``hydra.run.dir``, given or from the config) into a directory that already holds a run is refused with
      one line and exit 2 before Hydra creates or writes anything there (``.hydra/``, the log file), unless
      ``overwrite=true`` or a training run resumes from a checkpoint inside it (:func:`trainlab.run_dir.reuse_refusal`).
      When it may run, it takes the directory's ``run.lock``: a second run started into it is refused.
    * A multirun of the basic sweeper re-run into the same ``hydra.sweep.dir`` skips each job whose directory holds a
      completed run of the same overrides (it returns the recorded metric; its files are not touched), runs the
      missing, failed and interrupted ones, and refuses (exit 2) a job directory that holds a run of other overrides.
    """

    def __init__(self) -> None:
        self.lock: Path | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from trainlab import run_dir

        if not run_dir.rank_zero():  # DDP's other processes join the directory of process 0
            return
        shown, directory = _resolved_dir(config, "hydra.run.dir")
        busy = f"hydra.run.dir={shown} is in use {{}}: nothing was run. Wait for it to end or choose a new one"
        try:
            run_dir.check_lock(directory)
        except run_dir.RunDirBusy as err:
            _refuse(busy.format(err))
        refusal = run_dir.reuse_refusal(directory, shown, "hydra.run.dir", **_reuse_settings(config))
        if refusal:
            _refuse(refusal)
        if run_dir.earlier_run(directory):  # reused (resume or overwrite=true): check it all before Hydra writes
            _check_before_reuse(config)
        try:
            self.lock = run_dir.acquire_lock(directory)
        except run_dir.RunDirBusy as err:
            _refuse(busy.format(err))
        atexit.register(run_dir.release_lock, self.lock)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        from trainlab import run_dir

        run_dir.release_lock(self.lock)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.sweeper._target_", default=None) != BASIC_SWEEPER:
            return  # other sweepers (hydra/sweeper=trainlab) keep track of their own trials
        from hydra._internal.core_plugins import basic_launcher

        original = basic_launcher.run_job
        if getattr(original, "_trainlab_guarded", False):
            return
        guarded = functools.partial(_run_job_unless_done, original)
        guarded._trainlab_guarded = True  # type: ignore[attr-defined]
        basic_launcher.run_job = guarded


def _refuse(message: str) -> None:
    from trainlab.errors import refusal

    print(refusal(Path(sys.argv[0]).name, message), file=sys.stderr)
    sys.exit(2)


def _resolved_dir(config: DictConfig, key: str, subdir_key: str | None = None) -> tuple[str, Path]:
    """The job directory Hydra's ``run_job`` will use (as written, and as a path)."""
    from hydra.core.hydra_config import HydraConfig

    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)  # as run_job does: ${hydra:...} may appear in the path
    try:
        shown = str(OmegaConf.select(config, key))
        if subdir_key is not None:
            shown = os.path.join(shown, str(OmegaConf.select(config, subdir_key)))
    finally:
        HydraConfig.instance().cfg = previous
    return shown, Path(shown)


def _reuse_settings(config: DictConfig) -> dict[str, Any]:
    return {
        "overwrite": OmegaConf.select(config, "overwrite", default=None),
        "ckpt_path": OmegaConf.select(config, "ckpt_path", default=None, throw_on_missing=False),
        "trains": OmegaConf.select(config, "train", default=None) is True,
        "has_overwrite": "overwrite" in config,
    }


def _check_before_reuse(config: DictConfig) -> None:
    """A training run that reuses a directory (resume, ``overwrite=true``): its settings and checkpoint are checked
    now, before Hydra rewrites ``.hydra/`` there, so that a refused command leaves the earlier run as it was."""
    if OmegaConf.select(config, "train", default=None) is not True:
        return
    from trainlab.validate import ConfigError

    task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    try:
        from trainlab.train import check_before_writing

        check_before_writing(task_cfg)
    except ConfigError as err:
        _refuse(str(err))


def _run_job_unless_done(original: Any, **kwargs: Any) -> Any:
    """``run_job`` of Hydra's basic launcher, skipping a job that already completed in its directory."""
    from hydra.core.utils import JobReturn, JobStatus

    from trainlab import run_dir

    config = kwargs["config"]
    shown, directory = _resolved_dir(config, kwargs["job_dir_key"], kwargs.get("job_subdir_key"))
    overrides = [str(o) for o in config.hydra.overrides.task]
    settings = _reuse_settings(config)
    sweep_dir = str(OmegaConf.select(config, kwargs["job_dir_key"]))
    busy = f"hydra.sweep.dir={sweep_dir}: job {shown} is in use {{}}: it was not run. Wait for it to end"
    try:
        run_dir.check_lock(directory)
    except run_dir.RunDirBusy as err:
        _refuse(busy.format(err))
    if settings["overwrite"] is not True:
        done = run_dir.finished_job(directory, overrides)
        if done is not None:
            metric = OmegaConf.select(config, "optimized_metric", default=None)
            value = done.get(metric) if metric else None
            log.info(f"skipped {shown} ({' '.join(overrides)}): it completed already, {metric}={value}")
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = os.path.abspath(shown)
            return JobReturn(
                overrides=overrides,
                hydra_cfg=config,
                working_dir=os.getcwd(),
                task_name=str(OmegaConf.select(config, "hydra.job.name", default="")),
                status=JobStatus.COMPLETED,
                _return_value=None if value is None else float(value),
            )
        recorded = run_dir.job_overrides(directory)
        what = run_dir.earlier_run(directory)
        resumes = settings["trains"] and run_dir.inside(settings["ckpt_path"], directory)
        if what and not run_dir.same_overrides(recorded, overrides) and not resumes:
            was = " ".join(recorded) if recorded is not None else "unknown overrides"
            _refuse(
                f"hydra.sweep.dir={sweep_dir}: job {shown} already holds {what} of other overrides ({was or 'none'}, "
                f"not {' '.join(overrides) or 'none'}): it was not run, nothing was written. Choose a new "
                "hydra.sweep.dir or replace its runs with overwrite=true"
            )
    try:
        lock = run_dir.acquire_lock(directory)
    except run_dir.RunDirBusy as err:
        _refuse(busy.format(err))
    try:
        return original(**kwargs)
    finally:
        run_dir.release_lock(lock)
