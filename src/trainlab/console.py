"""What every console script does around its task: check the command line before Hydra runs, then map the
task's outcome to an exit code. One code path for ``trainlab-train``, ``trainlab-eval`` and any script a user adds:

    @hydra.main(config_path=str(CONFIG_DIR), config_name="mine", version_base="1.3")
    def main(cfg): return run_job(my_task, cfg)

    def cli(): console_script("mine", main, "mine")

Exit codes: 0 done; 2 bad input (one line naming the setting, the value and what is allowed; nothing written);
1 the run found a problem (divergence, a failed recipe check) or could not go on (a full disk, out of memory: one
line saying what happened and what to do); 128 + n stopped by signal n, resumable.
"""

from __future__ import annotations

import errno
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from omegaconf import DictConfig

from trainlab.errors import ConfigError, DivergenceError, RecipeCheckFailed, RunInterrupted, one_line, refusal
from trainlab.settings import Setting

log = logging.getLogger("trainlab")

#: the run's own settings (the top of configs/train.yaml and eval.yaml), whichever console script runs it; every
#: other setting is declared by the class its ``_target_`` names (:mod:`trainlab.settings`)
SETTINGS = {
    "seed": Annotated[int, Setting("random seed", low=0, high=2**32 - 1)],
    "trust_checkpoint": Annotated[bool, Setting("whether to unpickle more than weights")],
    "overwrite": Annotated[bool, Setting("whether to run in a directory that holds an earlier run")],
    "channels_last": Annotated[bool, Setting("the channels-last memory format")],
    "train": Annotated[bool, Setting("whether to train")],
    "test": Annotated[bool, Setting("whether to test")],
    "extras.print_config": Annotated[bool, Setting("whether to print the config tree")],
    "extras.ignore_warnings": Annotated[bool, Setting("whether to silence Python warnings")],
    "extras.curves": Annotated[bool, Setting("whether to plot the learning curves")],
    "extras.threads": Annotated[int, Setting("PyTorch's threads", low=1, also=("auto",))],
}


def console_script(prog: str, hydra_main: Callable[[], Any], config_name: str) -> None:
    """The checks every console script runs before Hydra, and its answer when Hydra cannot compose the command line.

    The command line is split with Hydra's own parser (:func:`trainlab.validate.check_command_line`): unknown
    options and settings exit 2 before anything is created; the log directory is checked only when a job will run
    (not for ``--help``, ``--cfg``, ``--info``, ``-sc``...). When Hydra fails to compose (exit 1), the reason is
    explained in one line with a suggestion, exit 2. Hydra's own report of that failure (several lines) is held back
    (:class:`_HeldStderr`): what Hydra writes to stderr before the job starts is shown only when it is not explained.
    """
    from trainlab.validate import check_command_line, check_log_dir

    args = sys.argv[1:]
    try:
        line = check_command_line(args, config_name=config_name)
        if line is not None and line.runs_job:
            check_log_dir(args)
    except ConfigError as err:
        print(refusal(prog, err), file=sys.stderr)
        sys.exit(2)
    held = _HeldStderr(sys.stderr)
    sys.stderr = held
    try:
        hydra_main()
    except SystemExit as exit_:
        if exit_.code == 1 and held.holding:  # Hydra could not compose the command line? Say why, with a suggestion
            from trainlab.validate import explain_override_error

            explanation = explain_override_error(args, config_name=config_name)
            if explanation:
                held.drop()
                print(refusal(prog, f"invalid command line, nothing was run:\n  {explanation}"), file=sys.stderr)
                sys.exit(2)
        raise
    finally:
        held.release()
        if sys.stderr is held:
            sys.stderr = held.real


class _HeldStderr:
    """``sys.stderr`` while Hydra starts: what is written is held until the job starts (:func:`run_job` releases it),
    so that a composition error Hydra reports in several lines can be replaced by one line that explains it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.held: list[str] = []
        self.holding = True

    def write(self, text: str) -> int:
        if self.holding:
            self.held.append(text)
            return len(text)
        return self.real.write(text)

    def flush(self) -> None:
        if not self.holding:
            self.real.flush()

    def release(self) -> None:
        """Write what was held and pass everything through from now on."""
        if self.holding:
            self.holding = False
            self.real.write("".join(self.held))
            self.held.clear()
            self.real.flush()

    def drop(self) -> None:
        self.held.clear()
        self.release()

    def __getattr__(self, name: str) -> Any:  # fileno, isatty, encoding...: the real stream's
        return getattr(self.real, name)


def _release_stderr() -> None:
    if isinstance(sys.stderr, _HeldStderr):
        sys.stderr.release()


def run_job(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig, metric: str | None = None) -> float | None:
    """Run ``task`` (:func:`train`, ``trainlab.eval.evaluate``) as the Hydra job of a console script: every entry
    point maps failures to exit codes here, so that they all answer bad input alike.

    Bad settings or files (:class:`ConfigError`, ``FileNotFoundError``, ``DataFileError``): one line and exit 2, the
    empty run directory Hydra made is removed; in a multirun the job's ``metrics.json`` records the failure and the
    sweep goes on. Returns ``metrics[metric]`` (default: ``cfg.optimized_metric``) for a sweeper to optimise.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from trainlab.errors import DataFileError

    def record_failure(cfg: DictConfig, err: BaseException) -> None:  # imports torch: only when a job failed
        from trainlab.outputs import record_failure

        record_failure(cfg, err)

    _release_stderr()  # the job has started: what Hydra wrote before it (nothing to explain) is shown now
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
        print(refusal(_prog(), err), file=sys.stderr)
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
    except (OSError, MemoryError) as err:
        stopped = stopped_by_machine(err, cfg)
        if stopped is None:  # not a full disk or memory: a fault to see whole
            if not multirun:
                raise
            log.exception(f"this job failed, the sweep goes on: {type(err).__name__}: {err}")
            record_failure(cfg, err)
            return float("nan")
        log.error(stopped)
        if multirun:
            record_failure(cfg, err)
            return float("nan")
        print(f"{_prog()}: {stopped}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        if _out_of_memory(err) and not multirun:
            stopped = stopped_by_machine(err, cfg)
            log.error(stopped)
            print(f"{_prog()}: {stopped}", file=sys.stderr)
            sys.exit(1)
        if not multirun:
            raise
        # one failing job of a sweep does not stop the others; its metrics.json says why it failed
        log.exception(f"this job failed, the sweep goes on: {type(err).__name__}: {err}")
        record_failure(cfg, err)
        return float("nan")
    value = metrics.get(metric or cfg.get("optimized_metric") or "")
    return None if value is None else float(value)


def _prog() -> str:
    """``trainlab-train``/``trainlab-eval`` (from the Hydra job's name: its module), else the script's name."""
    from hydra.core.hydra_config import HydraConfig

    job = HydraConfig.get().job.name if HydraConfig.initialized() else None
    return f"trainlab-{job}" if job else Path(sys.argv[0]).name


@contextmanager
def refused_as_config_error() -> Iterator[None]:
    """Around building a run's objects from its settings (data, model, trainer), before anything is written: what a
    constructor refuses (``ValueError``, ``TypeError``, Lightning's ``MisconfigurationException``) is bad input,
    raised again as one line of :class:`ConfigError` (exit 2). ``ConfigError``, missing files and data-file errors
    pass as they are. Every entry point builds inside it (``trainlab.train``, ``trainlab.eval``)."""
    from trainlab.errors import DataFileError

    try:
        yield
    except (ConfigError, DataFileError, FileNotFoundError):
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(one_line(err)) from err
    except Exception as err:
        if not any(c.__name__ == "MisconfigurationException" for c in type(err).__mro__):
            raise
        raise ConfigError(one_line(err)) from err


#: errno of a write that failed for lack of room or of permission
DISK_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"


def stopped_by_machine(err: BaseException, cfg: DictConfig) -> str | None:
    """The one line for a run the machine stopped: a write that failed for room or permission (which file, what to
    free or choose, the checkpoint to continue from), or out of memory (the batch size, what to lower); ``None`` for
    any other error."""
    from omegaconf import OmegaConf

    if _out_of_memory(err):
        batch = OmegaConf.select(cfg, "data.batch_size", default=None)
        device = "GPU" if type(err).__name__ == "OutOfMemoryError" else "main"
        return (
            f"out of {device} memory at batch size {batch} (data.batch_size={batch}): lower data.batch_size, or use a "
            f"smaller model; nothing after the last checkpoint was kept{_resume_hint(cfg)}"
        )
    if not isinstance(err, OSError) or err.errno not in DISK_ERRNOS:
        return None
    path = err.filename or OmegaConf.select(cfg, "paths.output_dir", default="the run directory")
    what = DISK_ERRNOS[err.errno]
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free some space there, or choose a directory on another disk with hydra.run.dir=<dir>"
    else:
        todo = "choose a writable directory with hydra.run.dir=<dir> (or paths.log_dir=<dir>)"
    return f"the run stopped writing {path}: {what} ({err.strerror or err}). To go on: {todo}{_resume_hint(cfg)}"


def _resume_hint(cfg: DictConfig) -> str:
    """``; then continue with ckpt_path=<the last checkpoint written whole>``, or nothing when there is none."""
    from omegaconf import OmegaConf

    out = OmegaConf.select(cfg, "paths.output_dir", default=None)
    if not out or OmegaConf.select(cfg, "task_name", default=None) == "eval":
        return ""
    checkpoints = Path(str(out)) / "checkpoints"
    last = checkpoints / "last.ckpt"
    if not last.is_file():
        found = sorted(checkpoints.glob("*.ckpt"), key=lambda p: p.stat().st_mtime) if checkpoints.is_dir() else []
        if not found:
            return "; no checkpoint was written yet: start the run again"
        last = found[-1]
    return f"; then continue from the last checkpoint written whole: ckpt_path={last}"


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
