"""Weights & Biases that works on a fresh machine with no account and no network.

Lightning's ``WandbLogger`` does the logging; this factory only decides the mode and the group:

* mode: an explicit ``mode`` wins, then the ``WANDB_MODE`` environment variable; otherwise ``online`` when an API
  key is configured (``WANDB_API_KEY`` or a ``wandb login`` entry in ``~/.netrc``) and ``offline`` when not.
  An offline run is written under ``<save_dir>/wandb/offline-run-*`` and uploaded later with ``wandb sync``.
* group: by default the name of the multirun directory, so that all jobs of one ``-m`` sweep share a group.

The API key is only ever read by wandb itself; trainlab never copies it into configs, logs or checkpoints.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODES = ("online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_mode(mode: str | None) -> str:
    mode = mode or os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")
    if mode == "dryrun":  # wandb's old name for offline
        mode = "offline"
    if mode not in MODES:
        raise ValueError(f"logger.wandb.mode={mode!r} is not a W&B mode; choose one of {', '.join(MODES)}")
    return mode


def multirun_group() -> str | None:
    """The sweep directory's name when running under ``-m``, else ``None``."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return Path(HydraConfig.get().sweep.dir).name
    except ImportError:
        pass
    return None


def wandb_logger(
    save_dir: str,
    project: str = "trainlab",
    entity: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] = (),
    job_type: str | None = None,
    mode: str | None = None,
    log_model: bool | str = False,
    **kwargs: Any,
):
    from pytorch_lightning.loggers import WandbLogger

    mode = resolve_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        save_dir=save_dir,
        project=project,
        entity=entity,
        name=name,
        group=group or multirun_group(),
        tags=list(tags or []),
        job_type=job_type,
        offline=mode == "offline",
        mode=mode,
        log_model=log_model,
        **kwargs,
    )
