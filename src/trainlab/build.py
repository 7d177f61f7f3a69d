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

# the three kinds of regularizer (loss terms, layers passed to the network's constructor, batch transforms) are
# listed in trainlab.combinations, which the settings check reads before torch is imported
from trainlab.combinations import BATCH_REGULARIZERS, LAYER_REGULARIZERS, PENALTIES

log = logging.getLogger("trainlab")


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a bad setting surfaces as one line naming it, not wrapped in Hydra's
    InstantiationException with a traceback through Hydra's internals.

    Missing files and trainlab's own errors pass as the class raised them. What else the class refuses
    (``ValueError``, ``TypeError``, Lightning's ``MisconfigurationException``) becomes a
    :class:`~trainlab.errors.ConfigError` naming the config node (``trainer.devices=0: ...``): a keyword the class
    has no parameter for is answered with the settings it has (:mod:`trainlab.library_settings`)."""
    from hydra.errors import InstantiationException

    from trainlab.data.files import DataFileError
    from trainlab.errors import ConfigError

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
    """The data module; with ``data.loader=dataloader`` it also gets the per-sample augmentation transform."""
    datamodule = instantiate(cfg.data)
    if getattr(datamodule, "loader", "memory") == "dataloader":
        from trainlab.augment import per_sample_transform

        pixel, _ = build_augment(cfg)
        datamodule.train_transform = per_sample_transform(pixel)
    return datamodule


def build_augment(cfg: DictConfig):
    """(pixel-space augmentation, cutout) from the ``augment`` list, or (None, None)."""
    augment = _container(cfg.get("augment"))
    if not augment:
        return None, None
    from trainlab.augment import build_augment as build

    return build(augment, tuple(cfg.data.input_shape))


def build_preprocess(cfg: DictConfig):
    if not cfg.get("preprocess"):
        return None
    return instantiate(cfg.preprocess, input_shape=tuple(cfg.data.input_shape))


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


def build_net(cfg: DictConfig, input_shape: tuple[int, ...] | None = None, ensemble=None) -> torch.nn.Module:
    """The network; with an ensemble, the network that ensemble trains (:meth:`Ensemble.network`)."""
    ensemble = build_ensemble(cfg) if ensemble is None else ensemble
    if ensemble is None:
        return build_single_net(cfg, input_shape)
    return ensemble.network(lambda: build_single_net(cfg, input_shape))


def build_single_net(cfg: DictConfig, input_shape: tuple[int, ...] | None = None) -> torch.nn.Module:
    """The network: ``model`` built with the ``activation`` and the layer regularizers, then ``init`` applied.

    A layer regularizer (dropout, dropconnect, fractional_pool, ...) reaches the network as the constructor
    argument of the same name; a network without that argument cannot apply it, and the run is refused.
    ``input_shape``: what the network receives (after preprocessing; ``data.input_shape`` by default).
    """
    regularizers = _container(cfg.get("regularizer")) or {}
    unknown = set(regularizers) - set(PENALTIES) - set(LAYER_REGULARIZERS) - set(BATCH_REGULARIZERS)
    if unknown:
        known = ", ".join(PENALTIES + LAYER_REGULARIZERS + BATCH_REGULARIZERS)
        raise ValueError(f"regularizer={sorted(unknown)} is not a regularizer; choose from {known}")
    target = cfg.model._target_
    net_class = hydra.utils.get_class(target)
    accepts = inspect.signature(net_class).parameters
    kwargs: dict[str, Any] = {}
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
    if input_shape is not None:
        kwargs["input_shape"] = list(input_shape)
    for name in LAYER_REGULARIZERS:
        if name not in regularizers:
            continue
        if name not in accepts:
            options = model_options()
            works = [n for t, n in options.items() if name in inspect.signature(hydra.utils.get_class(t)).parameters]
            raise ValueError(
                f"regularizer={name} does not apply to model={options.get(target, target)}; "
                f"it works with model={' or model='.join(works) if works else '(none)'}"
            )
        kwargs[name] = regularizers[name]
    activation = instantiate(cfg.activation) if cfg.get("activation") else None
    if activation is not None:
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


def build_penalty(cfg: DictConfig):
    """One :class:`WeightPenalty` summing every selected l1 / l2 / elastic_net term, or ``None``."""
    from trainlab.regularizers.penalties import WeightPenalty

    regularizers = _container(cfg.get("regularizer")) or {}
    l1 = l2 = 0.0
    include_bias = include_norm = False
    for name in PENALTIES:
        if name not in regularizers:
            continue
        settings = dict(regularizers[name] or {})
        include_bias |= bool(settings.pop("include_bias", False))
        include_norm |= bool(settings.pop("include_norm", False))
        if name == "l1":
            l1 += settings.pop("weight")
        elif name == "l2":
            l2 += settings.pop("weight")
        else:
            l1 += settings.pop("l1_weight")
            l2 += settings.pop("l2_weight")
        if settings:
            raise ValueError(f"regularizer.{name}: unknown settings {sorted(settings)}")
    if not (l1 or l2):
        return None
    return WeightPenalty(l1=l1, l2=l2, include_bias=include_bias, include_norm=include_norm)


def build_mixing(cfg: DictConfig):
    """(Mixing or None, label smoothing eps) from the batch regularizers."""
    from trainlab.regularizers.mixing import CutMix, Mixing, Mixup

    regularizers = _container(cfg.get("regularizer")) or {}
    mixup = Mixup(**regularizers["mixup"]) if "mixup" in regularizers else None
    cutmix = CutMix(**regularizers["cutmix"]) if "cutmix" in regularizers else None
    mixing = Mixing(cfg.data.num_classes, mixup, cutmix)
    eps = float((regularizers.get("label_smoothing") or {}).get("eps", 0.0))
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"regularizer.label_smoothing.eps={eps} must be in [0, 1)")
    return (mixing if mixing else None), eps


def build_module(cfg: DictConfig) -> Classifier:
    """The LightningModule for ``cfg``: preprocessing, augmentation, the network, the loss terms, the optimizer."""
    preprocess = build_preprocess(cfg)
    pixel_augment, cutout = build_augment(cfg)
    if cutout is not None and preprocess is not None and len(preprocess.output_shape) != 3:
        raise ValueError(
            f"augment=[cutout] needs images after preprocessing; preprocess={preprocess.method} gives vectors"
        )
    if cfg.data.get("loader", "memory") == "dataloader":
        pixel_augment = None  # the DataLoader's workers augment each sample
    ensemble = build_ensemble(cfg)
    net = build_net(cfg, preprocess.output_shape if preprocess is not None else None, ensemble)
    mixing, label_smoothing = build_mixing(cfg)
    scheduler_cfg = cfg.get("scheduler")
    scheduler, interval, monitor = None, "epoch", None
    schedule = ensemble.schedule() if ensemble is not None else None
    if schedule is not None:  # e.g. snapshot ensembles bring their own cyclic learning rate
        scheduler_cfg, scheduler, interval = None, schedule, "step"
    if scheduler_cfg:
        scheduler_cfg = OmegaConf.to_container(scheduler_cfg, resolve=True)
        interval = scheduler_cfg.pop("interval", "epoch")
        monitor = scheduler_cfg.pop("monitor", None)
        for key in SCHEDULER_KEYS:
            scheduler_cfg.pop(key, None)
        scheduler = instantiate(scheduler_cfg)
    return Classifier(
        net=net,
        num_classes=cfg.data.num_classes,
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        scheduler_interval=interval,
        scheduler_monitor=monitor,
        penalty=build_penalty(cfg),
        preprocess=preprocess,
        pixel_augment=pixel_augment,
        cutout=cutout,
        mixing=mixing,
        label_smoothing=label_smoothing,
        config={k: _container(cfg.get(k)) for k in MODEL_KEYS},
        channels_last=cfg.get("channels_last") is True,
        compile=_container(cfg.get("compile")) or None,
        callbacks=[ensemble] if ensemble is not None else [],
    )


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
