"""A run directory holds one run: an earlier run's files are never overwritten by accident.

* :func:`earlier_run` says whether a directory already holds a run (``config.yaml``, ``metrics.json`` or
  checkpoints; Hydra's own ``.hydra/`` and log file alone do not count: a refused command leaves just those).
* :func:`reuse_refusal` is the rule: such a directory is reused only with ``overwrite=true``, or by a training run
  that resumes from a checkpoint inside it (``ckpt_path=<dir>/checkpoints/last.ckpt``), which keeps the earlier
  ``config.yaml``, ``metrics.json`` and ``csv/metrics.csv`` as ``<name>.<k>`` (:func:`keep_earlier`).
* :func:`acquire_lock`: one run at a time in a directory (``run.lock``, created with ``O_EXCL``); the lock of a
  process that no longer exists (kill -9) is taken over.
* :func:`finished_job`: a multirun job that already completed with the same overrides (skipped on a re-run).

The checks run in :class:`trainlab.hydra_callbacks.RunDirGuard`, after Hydra has composed the config and before it
creates the run directory or writes anything into it. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

#: files that only a run (not Hydra alone) writes
RUN_FILES = ("config.yaml", "metrics.json", "checkpoints")
#: files a resumed run would replace: kept as ``<name>.<k>`` when a run resumes in its own directory
KEPT_ON_RESUME = ("config.yaml", "metrics.json", "csv/metrics.csv")
LOCK = "run.lock"


class RunDirBusy(RuntimeError):
    """Another live process holds the directory's ``run.lock``."""


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of ``run_dir``, or ``None`` when missing or unreadable (cut off, not JSON)."""
    try:
        data = json.loads((Path(run_dir) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def earlier_run(run_dir: Path) -> str | None:
    """What of an earlier run ``run_dir`` holds, in a few words; ``None`` when nothing (or only Hydra's files)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    present = []
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file() or (path.is_dir() and any(p.is_file() for p in path.rglob("*"))):
            present.append(name + ("/" if path.is_dir() else ""))
    if not present:
        return None
    metrics = read_metrics(run_dir)
    if metrics and metrics.get("status"):
        status = str(metrics["status"])
        return f"{'an' if status[:1] in 'aeiou' else 'a'} {status} run ({', '.join(present)})"
    return f"an earlier run's files ({', '.join(present)})"


def inside(path: str | os.PathLike | None, directory: Path) -> bool:
    """Whether ``path`` is a file path under ``directory``."""
    if not path:
        return False
    try:
        return Path(directory).resolve() in Path(path).resolve().parents
    except (OSError, RuntimeError, TypeError):
        return False


def reuse_refusal(
    run_dir: Path, shown: str, key: str, *, overwrite: Any, ckpt_path: Any, trains: bool, has_overwrite: bool
) -> str | None:
    """The one-line refusal for a run into ``run_dir`` (``key=shown`` on the command line), or ``None`` if it may run.

    ``overwrite``: the run's ``overwrite`` setting (only ``True`` counts); ``ckpt_path``/``trains``: a training run
    resuming from a checkpoint inside ``run_dir`` continues that run there.
    """
    what = earlier_run(run_dir)
    if what is None or overwrite is True:
        return None
    if overwrite is not None and not isinstance(overwrite, bool):
        return f"overwrite={overwrite!r}: must be true or false; {key}={shown} holds {what}: nothing was run"
    if trains and isinstance(ckpt_path, str) and inside(ckpt_path, run_dir):
        return None
    ways = [f"choose a new {key}"]
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if trains and last.is_file():
        ways.append(f"continue it with ckpt_path={shown.rstrip('/')}/checkpoints/last.ckpt")
    if has_overwrite:
        ways.append("replace it with overwrite=true")
    how = ", ".join(ways[:-1]) + f" or {ways[-1]}" if len(ways) > 1 else ways[0]
    return f"{key}={shown} already holds {what}: nothing was run, nothing was written. To run anyway, {how}"


def keep_earlier(run_dir: Path) -> list[Path]:
    """Copy the earlier run's :data:`KEPT_ON_RESUME` files of ``run_dir`` to ``<name>.<k>`` (k = 1, 2, ...: one
    more for each resume into the directory), before a resumed run replaces them; returns the copies."""
    run_dir = Path(run_dir)
    existing = [run_dir / name for name in KEPT_ON_RESUME if (run_dir / name).is_file()]
    if not existing:
        return []
    k = 1
    while any(Path(f"{p}.{k}").exists() for p in existing):
        k += 1
    copies = []
    for path in existing:
        copy = Path(f"{path}.{k}")
        shutil.copy2(path, copy)
        copies.append(copy)
    return copies


def _holder(path: Path) -> tuple[int, str] | None:
    try:
        pid, host = path.read_text().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_lock(run_dir: Path) -> bool:
    """Raise :class:`RunDirBusy` when a live process holds ``run_dir/run.lock``; ``True`` when a lock is there whose
    holder is gone (kill -9, power loss), ``False`` when there is none. Writes nothing."""
    path = Path(run_dir) / LOCK
    holder = _holder(path)
    if holder is None:  # none, being written this instant, or unreadable: held unless old
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return False
        if age < 10:
            raise RunDirBusy(f"by another run, starting (lock {path})")
        return True
    pid, host = holder
    if pid != os.getpid() and (host != socket.gethostname() or _alive(pid)):
        raise RunDirBusy(f"by another run (pid {pid} on {host}, lock {path})")
    return True


def acquire_lock(run_dir: Path) -> Path:
    """Create ``run_dir/run.lock`` atomically (``O_EXCL``) with this process's id; raise :class:`RunDirBusy` when a
    live process holds it. A lock left by a process that is gone (kill -9, power loss) is taken over."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if check_lock(run_dir):
                path.unlink(missing_ok=True)  # the holder is gone: take the lock over
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return path
    raise RunDirBusy(f"by another run (could not take its lock {path})")


def release_lock(path: Path | None) -> None:
    """Remove a lock taken by this process (a lock of another process is left alone)."""
    if path is None:
        return
    holder = _holder(Path(path))
    if holder is not None and holder[0] == os.getpid():
        Path(path).unlink(missing_ok=True)


def finished_job(job_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """``metrics.json`` of ``job_dir`` when it records a completed run of exactly ``overrides`` (its
    ``.hydra/overrides.yaml``), else ``None``."""
    metrics = read_metrics(job_dir)
    if not metrics or metrics.get("status") != "completed":
        return None
    return metrics if same_overrides(job_overrides(job_dir), overrides) else None


def same_overrides(recorded: list[str] | None, overrides: list[str]) -> bool:
    """Whether two jobs' override lists are the same settings (in any order)."""
    return recorded is not None and sorted(recorded) == sorted(overrides)


def job_overrides(job_dir: Path) -> list[str] | None:
    """The overrides recorded in ``job_dir/.hydra/overrides.yaml``, or ``None``."""
    from omegaconf import OmegaConf

    try:
        return list(OmegaConf.to_container(OmegaConf.load(Path(job_dir) / ".hydra" / "overrides.yaml")) or [])
    except Exception:  # noqa: BLE001 - missing or unreadable: not known to be the same job
        return None


def rank_zero() -> bool:
    """Whether this process is the first (or only) one of its run: DDP's other processes join its directory."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if key in os.environ:
            try:
                return int(os.environ[key]) == 0 and int(os.environ.get("NODE_RANK", 0) or 0) == 0
            except ValueError:
                return True
    return True
