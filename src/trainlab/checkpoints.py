"""Checkpoints: what a checkpoint carries besides the weights, reading one safely, and whether a run can resume
from it (the same architecture, optimizer and schedule). Cheap to import: torch loads only inside the functions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab.errors import ConfigError

#: the parts of the config that define the model and data, stored in every checkpoint
MODEL_KEYS = (
    "data",
    "preprocess",
    "augment",
    "model",
    "activation",
    "init",
    "regularizer",
    "ensemble",
    "optimizer",
    "scheduler",
)


#: settings that decide the shapes of a checkpoint's weights, and the classes whose state it restores (the optimizer's
#: moments, the scheduler's position): resuming needs them unchanged
ARCHITECTURE_KEYS = (
    "model",
    "activation",
    "data.input_shape",
    "data.num_classes",
    "ensemble._target_",
    "ensemble.size",
    "optimizer._target_",
    "scheduler._target_",
)


def architecture_changes(saved: Mapping[str, Any], cfg: DictConfig) -> list[str]:
    """``key: checkpoint X, now Y`` for every :data:`ARCHITECTURE_KEYS` setting that differs (flattened)."""

    def flat(node: Any, prefix: str) -> dict[str, Any]:
        if isinstance(node, Mapping):
            return {k: v for key, sub in node.items() for k, v in flat(sub, f"{prefix}.{key}").items()}
        return {prefix: list(node) if isinstance(node, list | tuple) else node}

    saved_cfg = OmegaConf.create(dict(saved))
    changes = []
    for key in ARCHITECTURE_KEYS:
        old = _container(OmegaConf.select(saved_cfg, key, default=None))
        new = _container(OmegaConf.select(cfg, key, default=None))
        old_flat, new_flat = flat(old, key), flat(new, key)
        for k in sorted(set(old_flat) | set(new_flat)):
            if old_flat.get(k) != new_flat.get(k):
                changes.append(f"{k}: checkpoint {old_flat.get(k)!r}, now {new_flat.get(k)!r}")
    return changes


def upgraded(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's config in today's form: one written before every technique was a ``_target_`` object (before
    2026-11-30: ``regularizer: {dropout: {p: 0.5}}``, ``ensemble: {kind: snapshot, cycles: 5}``) gets the class and
    the defaults of today's option (``configs/<group>/<name>.yaml``), its own values on top. Interpolations of the
    option (``${data.input_shape}``) are resolved against the checkpoint's config; those that name something a
    checkpoint does not carry (``${paths.output_dir}``) are left unset. A config in today's form is returned as is.
    """
    config = dict(saved)
    for group in ("augment", "regularizer"):
        entries = config.get(group)
        if isinstance(entries, Mapping):
            config[group] = {
                name: _with_option(config, group, name, node, str(name))
                if isinstance(node, Mapping) and "_target_" not in node
                else node
                for name, node in entries.items()
            }
    ensemble = config.get("ensemble")
    if isinstance(ensemble, Mapping) and "_target_" not in ensemble and isinstance(ensemble.get("kind"), str):
        own = {k: v for k, v in ensemble.items() if k != "kind"}
        config["ensemble"] = _with_option(config, "ensemble", "ensemble", own, ensemble["kind"])
    return config


def _with_option(config: Mapping[str, Any], group: str, key: str, node: Mapping[str, Any], option: str) -> Any:
    """``node`` on top of the node ``key`` of today's ``configs/<group>/<option>.yaml`` (``node`` when none)."""
    from trainlab import CONFIG_DIR

    path = CONFIG_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return dict(node)
    default = OmegaConf.load(path).get(key)
    if not isinstance(default, DictConfig):
        return dict(node)
    context = OmegaConf.create({**{k: v for k, v in config.items() if k != group}, "_option": default})
    merged = {
        str(name): _container(OmegaConf.select(context, f"_option.{name}", throw_on_resolution_failure=False))
        for name in default
    }
    return {**merged, **node}


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Read a checkpoint with a clear error when it is missing or unreadable.

    Safely, with ``torch.load(weights_only=True)`` (tensors and plain containers only), unless ``trusted``
    (``trust_checkpoint=true``): unpickling arbitrary objects can run code, so it is the user's explicit choice.
    """
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={str(path)!r}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(
            f"ckpt_path={str(path)!r} is an empty file (0 bytes), not a checkpoint written by trainlab-train"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as err:  # no permission, an I/O error
        raise ValueError(
            f"ckpt_path={str(path)!r}: cannot read this file ({err.strerror or err}): give your user read permission "
            f"(chmod u+r {path}) or copy it somewhere readable"
        ) from None
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not a checkpoint of ours
        with path.open("rb") as f:
            head = f.read(12)
        raise ValueError(
            f"ckpt_path={str(path)!r} is not a readable PyTorch Lightning checkpoint (not a file torch.save wrote: "
            f"it starts with {head!r}); give a .ckpt file written by trainlab-train"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as err:  # noqa: BLE001 - any failure here means "not a usable checkpoint"
        first = str(err).splitlines()[0] if str(err) else ""
        hint = (
            ""
            if trusted
            else (
                ". If it holds more than weights and you trust where the file came from, trust_checkpoint=true loads "
                "it with weights_only=False (unpickling can run code)"
            )
        )
        raise ValueError(
            f"ckpt_path={str(path)!r} is not a readable PyTorch Lightning checkpoint ({type(err).__name__}: "
            f"{first}){hint}"
        ) from err


def check_resume(cfg: DictConfig) -> dict[str, Any] | None:
    """The checkpoint ``cfg.ckpt_path`` names, read and checked: readable, saved by the same architecture, optimizer
    and scheduler, and a schedule that can continue to this run's ``trainer.max_epochs``. :class:`ConfigError` when
    unusable; ``None`` without ``ckpt_path``."""
    if not cfg.get("ckpt_path"):
        return None
    try:  # fail now, not after building everything, when it is unusable
        checkpoint = load_checkpoint(cfg.ckpt_path, trusted=cfg.get("trust_checkpoint") is True)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None
    saved = (checkpoint.get("trainlab") or {}).get("config")
    changes = architecture_changes(upgraded(saved), cfg) if saved else []
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


def checkpoint_epoch(path: str | None) -> int | None:
    """The epoch (0-based) a checkpoint was written at."""
    if not path:
        return None
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
