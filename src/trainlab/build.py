"""Building a run's objects from its config: data module, LightningModule (preprocessing, techniques, network,
optimizer, schedule), callbacks, loggers and trainer. Everything is a ``_target_`` instantiated by Hydra; this
module only connects them. Imported after Hydra has parsed the command line (it imports torch and Lightning)."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelSummary, ProgressBar
from pytorch_lightning.loggers import Logger

from trainlab import CONFIG_DIR
from trainlab.checkpoints import MODEL_KEYS, _container
from trainlab.classifier import SCHEDULER_KEYS, Classifier

log = logging.getLogger("trainlab")


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a bad setting surfaces as one line naming it, not wrapped in Hydra's
    InstantiationException with a traceback through Hydra's internals.

    Missing files and trainlab's own errors pass as the class raised them. What else the class refuses
    (``ValueError``, ``TypeError``, Lightning's ``MisconfigurationException``) becomes a
    :class:`~trainlab.errors.ConfigError` naming the config node (``trainer.devices=0: ...``): a keyword the class
    has no parameter for is answered with the settings it has (:mod:`trainlab.library_settings`)."""
    from hydra.errors import InstantiationException

    from trainlab.errors import ConfigError, DataFileError

    try:
        return hydra.utils.instantiate(config, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ConfigError, DataFileError, FileNotFoundError)):
            raise cause from None
        misconfigured = any(c.__name__ == "MisconfigurationException" for c in type(cause).__mro__)
        if isinstance(cause, (ValueError, TypeError)) or misconfigured:
            raise ConfigError(_refused_by_class(config, cause)) from None
        raise


def _refused_by_class(config: Any, err: BaseException) -> str:
    """One line for a class that refused its settings: the setting named (when the message does not name it)."""
    import re

    from trainlab.errors import one_line
    from trainlab.library_settings import HYDRA_KEYS, signature_problems

    node = config if isinstance(config, DictConfig | dict) else {}
    key = node._get_full_key(None) if isinstance(node, DictConfig) else ""
    key = key or str(node.get("_target_", "")).rsplit(".", 1)[-1].lower() or "the config"
    settings = _container(node) if isinstance(node, DictConfig) else dict(node)
    message = one_line(err)
    if isinstance(err, TypeError) and "unexpected keyword argument" in message and "_target_" in settings:
        try:
            problems = signature_problems(key, settings)
        except ValueError:
            problems = []
        if problems:
            return "; ".join(problems)
    if re.search(rf"(?<![\w.]){re.escape(key)}[.=]", message):
        return message  # trainlab's classes name the setting: model.depth=9: ...
    parts = message.split("; ")
    if all(p.split("=", 1)[0] in settings for p in parts):  # @checked names the argument: p=1.5: ...
        return "; ".join(f"{key}.{p}" for p in parts)
    named = [n for n in settings if n not in HYDRA_KEYS and re.search(rf"(?<![\w.]){re.escape(str(n))}(?!\w)", message)]
    what = ", ".join(f"{key}.{n}={settings[n]!r}" for n in named) or key
    return f"{what}: {settings.get('_target_', 'the class')} refuses {'it' if len(named) == 1 else 'them'} ({message})"


def check_data(datamodule: pl.LightningDataModule) -> None:
    """Find (or download) and read the data files now, so that missing or corrupt files refuse the run before it
    writes anything. Process 0 only: under DDP the other processes read them in ``fit``, after process 0."""
    if pl.utilities.rank_zero_only.rank != 0:
        return
    datamodule.prepare_data()
    datamodule.setup("fit")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The data module; with ``data.loader=dataloader`` it also gets the per-sample twin of the pixel augmentation."""
    # num_classes and input_shape are declared once in the data config for the other configs to read
    # (${data.num_classes}); the data module receives them only if its constructor asks for them
    params = inspect.signature(hydra.utils.get_class(cfg.data._target_)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    declared = [k for k in ("num_classes", "input_shape") if k in cfg.data and not (takes_any or k in params)]
    data_cfg = cfg.data
    if declared:
        data_cfg = {k: v for k, v in OmegaConf.to_container(cfg.data, resolve=True).items() if k not in declared}
    datamodule = instantiate(data_cfg)
    if getattr(datamodule, "loader", "memory") == "dataloader":
        from trainlab.augment import per_sample_transform

        pixels = [t for _, t in build_techniques(cfg) if t.stage == "pixels"]
        datamodule.train_transform = per_sample_transform(pixels)
    return datamodule


def build_techniques(cfg: DictConfig) -> list[tuple[str, Any]]:
    """``(option name, object)`` for every entry of ``augment`` and ``regularizer`` (:mod:`trainlab.techniques`)."""
    from trainlab.techniques import stage_of

    built = []
    for group in ("augment", "regularizer"):
        for name, node in (cfg.get(group) or {}).items():
            if node is None:
                continue
            if not isinstance(node, DictConfig) or "_target_" not in node:
                raise ValueError(f"{group}.{name} needs a _target_ (the technique's class), got: {node}")
            technique = instantiate(node)
            stage_of(technique)  # a class that does not say where it acts is refused here
            built.append((f"{group}={name}", technique))
    return built


def build_preprocess(cfg: DictConfig):
    if not cfg.get("preprocess"):
        return None
    return instantiate(cfg.preprocess)  # input_shape: ${data.input_shape} in its YAML


def model_options() -> dict[str, str]:
    """``{network class path: model option name}`` from configs/model/*.yaml."""
    options = {}
    for path in sorted((Path(CONFIG_DIR) / "model").glob("*.yaml")):
        target = (OmegaConf.load(path) or {}).get("_target_")
        if target:
            options[target] = path.stem
    return options


def build_ensemble(cfg: DictConfig):
    """The ``ensemble`` object (:class:`trainlab.ensembles.Ensemble`), or None."""
    return instantiate(cfg.ensemble) if cfg.get("ensemble") else None


def build_net(
    cfg: DictConfig, input_shape: tuple[int, ...] | None = None, ensemble=None, techniques=None
) -> torch.nn.Module:
    """The network; with an ensemble, the network that ensemble trains (:meth:`Ensemble.network`)."""
    ensemble = build_ensemble(cfg) if ensemble is None else ensemble
    if ensemble is None:
        return build_single_net(cfg, input_shape, techniques)
    return ensemble.network(lambda: build_single_net(cfg, input_shape, techniques))


def build_single_net(
    cfg: DictConfig, input_shape: tuple[int, ...] | None = None, techniques: list[tuple[str, Any]] | None = None
) -> torch.nn.Module:
    """The network: ``model`` built with the ``activation`` and the layer regularizers, then ``init`` applied.

    The model's constructor receives, only if its signature asks for them (or takes ``**kwargs``): ``input_shape``
    (what the network receives after preprocessing), ``activation`` (a factory: every call a new layer) and each
    layer regularizer under its ``argument`` name (:class:`trainlab.techniques.LayerRegularizer`). A layer
    regularizer the model has no argument for cannot be applied, and the run is refused.
    """
    techniques = build_techniques(cfg) if techniques is None else techniques
    target = cfg.model._target_
    net_class = hydra.utils.get_class(target)
    params = inspect.signature(net_class).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def accepts(name: str) -> bool:
        return takes_any or name in params

    data_shape = list(cfg.data.input_shape)
    if getattr(net_class, "needs_images", False) and len(input_shape or data_shape) != 3:
        name = model_options().get(target, target)
        if len(data_shape) != 3:  # the data set itself is one of vectors
            raise ValueError(
                f"model={name} needs images [C, H, W], but the data are vectors (data.input_shape={data_shape}); "
                "for vectors use model=mlp"
            )
        raise ValueError(
            f"preprocess={cfg.preprocess.method} turns images into vectors of {input_shape[0]}, which "
            f"model={name} cannot take; it works with model=mlp (preprocess=zca_whiten keeps images)"
        )
    kwargs: dict[str, Any] = {}
    if input_shape is not None and accepts("input_shape"):
        kwargs["input_shape"] = list(input_shape)
    for option, technique in techniques:
        if technique.stage != "layer":
            continue
        if not accepts(technique.argument):
            options = model_options()
            works = [
                n
                for t, n in options.items()
                if technique.argument in inspect.signature(hydra.utils.get_class(t)).parameters
            ]
            raise ValueError(
                f"{option} does not apply to model={options.get(target, target)}; "
                f"it works with model={' or model='.join(works) if works else '(none)'}"
            )
        kwargs[technique.argument] = technique
    activation = instantiate(cfg.activation) if cfg.get("activation") else None
    if activation is not None and accepts("activation"):
        kwargs["activation"] = activation
    net = instantiate(cfg.model, **kwargs)

    init = instantiate(cfg.init) if cfg.get("init") else None
    preferred = getattr(activation, "preferred_init", None)
    if preferred and (init is None or init.scheme == "default"):
        from trainlab.init import WeightInit

        log.info(f"activation={activation.name} needs init={preferred}: using it (choose another with init=...)")
        init = WeightInit(preferred, bias=getattr(init, "bias", None))
    if init is not None:
        init(net, activation)
    return net


def build_module(cfg: DictConfig) -> Classifier:
    """The LightningModule for ``cfg``: preprocessing, the techniques, the network, the optimizer and schedule."""
    from trainlab.techniques import Techniques

    preprocess = build_preprocess(cfg)
    techniques = build_techniques(cfg)
    output_shape = preprocess.output_shape if preprocess is not None else None
    for option, technique in techniques:
        if getattr(technique, "needs_images", False) and output_shape is not None and len(output_shape) != 3:
            raise ValueError(
                f"{option.replace('=', '=[', 1)}] needs images after preprocessing; preprocess={preprocess.method} "
                "gives vectors"
            )
    ensemble = build_ensemble(cfg)
    net = build_net(cfg, output_shape, ensemble, techniques)
    scheduler, interval, monitor = build_scheduler(cfg, ensemble)
    return Classifier(
        net=net,
        num_classes=cfg.data.num_classes,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        scheduler_interval=interval,
        scheduler_monitor=monitor,
        preprocess=preprocess,
        # the DataLoader's workers apply the pixel stage with data.loader=dataloader
        techniques=Techniques([t for _, t in techniques], pixels_in_loader=cfg.data.get("loader") == "dataloader"),
        config={k: _container(cfg.get(k)) for k in MODEL_KEYS},
        channels_last=cfg.get("channels_last") is True,
        compile=_container(cfg.get("compile")) or None,
        callbacks=[ensemble] if ensemble is not None else [],
    )


def build_scheduler(cfg: DictConfig, ensemble=None) -> tuple[Any, str, str | None]:
    """(scheduler factory or None, its interval, the metric it monitors): the ensemble's own schedule (snapshot)
    if it has one, else ``scheduler``."""
    schedule = ensemble.schedule() if ensemble is not None else None
    if schedule is not None:
        return schedule, "step", None
    if not cfg.get("scheduler"):
        return None, "epoch", None
    scheduler_cfg = OmegaConf.to_container(cfg.scheduler, resolve=True)
    interval = scheduler_cfg.pop("interval", "epoch")
    monitor = scheduler_cfg.pop("monitor", None)
    for key in SCHEDULER_KEYS:
        scheduler_cfg.pop(key, None)
    return instantiate(scheduler_cfg), interval, monitor


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """Every entry of ``cfg.callbacks`` that has a ``_target_``; entries set to ``null`` are skipped.

    Callbacks that contradict the trainer config are dropped instead of failing: no progress bar when
    ``trainer.enable_progress_bar=false``, no model summary when ``trainer.enable_model_summary=false``, no
    learning-rate monitor when there is no logger to send it to.
    """
    callbacks: list[Callback] = []
    for name, cb_cfg in (cfg.get("callbacks") or {}).items():
        if cb_cfg is None:
            continue
        if not isinstance(cb_cfg, DictConfig) or "_target_" not in cb_cfg:
            raise ValueError(f"callbacks.{name} needs a _target_ (the callback class), got: {cb_cfg}")
        callbacks.append(instantiate(cb_cfg))
    trainer_cfg = cfg.trainer
    if not trainer_cfg.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if not trainer_cfg.get("enable_model_summary", True):
        callbacks = [c for c in callbacks if not isinstance(c, ModelSummary)]
    if not cfg.get("logger"):
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    return callbacks


def checkpoint_plugins(cfg: DictConfig) -> list[Any]:
    """The trainer's plugins: the configured ones, plus atomic checkpoint writes unless a CheckpointIO is given."""
    from lightning_fabric.plugins import CheckpointIO

    from trainlab.callbacks import AtomicCheckpointIO

    plugins = list(instantiate(cfg.trainer.plugins)) if cfg.trainer.get("plugins") else []
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def build_trainer(cfg: DictConfig) -> pl.Trainer:
    """The trainer with the configured callbacks and loggers, saving ``interrupted.ckpt`` on ctrl-C / SIGTERM /
    SIGUSR1 (:class:`~trainlab.callbacks.interrupt.GracefulInterrupt`) and writing checkpoints atomically."""
    from trainlab.callbacks.interrupt import GracefulInterrupt

    callbacks = build_callbacks(cfg)
    callbacks.append(GracefulInterrupt(Path(cfg.paths.output_dir) / "checkpoints"))
    loggers = build_loggers(cfg)
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=checkpoint_plugins(cfg))


def build_loggers(cfg: DictConfig) -> list[Logger]:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is None:
            continue
        if not isinstance(lg_cfg, DictConfig) or "_target_" not in lg_cfg:
            raise ValueError(f"logger.{name} needs a _target_ (the logger class), got: {lg_cfg}")
        loggers.append(instantiate(lg_cfg))
    return loggers
