"""What every console script does around its task: check the command line before Hydra runs, then map the
task's outcome to an exit code. One code path for ``trainlab-train``, ``trainlab-eval`` and any script a user adds:

    @hydra.main(config_path=str(CONFIG_DIR), config_name="mine", version_base="1.3")
    def main(cfg): return run_job(my_task, cfg)

    def cli(): console_script("mine", main, "mine")

Exit codes: 0 done; 2 bad input (one line naming the setting, the value and what is allowed; nothing written);
1 the run found a problem (divergence, a failed recipe check); 128 + n stopped by signal n, resumable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trainlab.errors import ConfigError, DivergenceError, RecipeCheckFailed, RunInterrupted

log = logging.getLogger("trainlab")


def console_script(prog: str, hydra_main: Callable[[], Any], config_name: str) -> None:
    """The checks every console script runs before Hydra, and its answer when Hydra cannot compose the command line.

    The command line is split with Hydra's own parser (:func:`trainlab.validate.check_command_line`): unknown
    options and settings exit 2 before anything is created; the log directory is checked only when a job will run
    (not for ``--help``, ``--cfg``, ``--info``, ``-sc``...). When Hydra fails to compose (exit 1), the reason is
    explained in one line with a suggestion, exit 2.
    """
    from trainlab.validate import check_command_line, check_log_dir

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


def run_job(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig, metric: str | None = None) -> float | None:
    """Run ``task`` (:func:`train`, ``trainlab.eval.evaluate``) as the Hydra job of a console script: every entry
    point maps failures to exit codes here, so that they all answer bad input alike.

    Bad settings or files (:class:`ConfigError`, ``FileNotFoundError``, ``DataFileError``): one line and exit 2, the
    empty run directory Hydra made is removed; in a multirun the job's ``metrics.json`` records the failure and the
    sweep goes on. Returns ``metrics[metric]`` (default: ``cfg.optimized_metric``) for a sweeper to optimise.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from trainlab.data.files import DataFileError
    from trainlab.outputs import record_failure

    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        metrics = task(cfg)
    except (ConfigError, FileNotFoundError, DataFileError) as err:  # bad settings, or data files missing/corrupt
        if multirun:
            log.error(f"this job failed, the sweep goes on: {err}")
            record_failure(cfg, err)
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
        record_failure(cfg, err)
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
