"""Plumbing shared by ``trainlab-train`` and ``trainlab-eval``: building objects from the config and writing
the run's outputs. Imported only after Hydra has parsed the command line (it imports torch and Lightning)."""

from __future__ import annotations

import inspect
import json
import logging
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, LearningRateMonitor, ModelSummary, ProgressBar
from pytorch_lightning.loggers import Logger

from trainlab import rng
from trainlab.classifier import SCHEDULER_KEYS, Classifier

# the three kinds of regularizer (loss terms, layers passed to the network's constructor, batch transforms) are
# listed in trainlab.combinations, which the settings check reads before torch is imported
from trainlab.combinations import BATCH_REGULARIZERS, LAYER_REGULARIZERS, PENALTIES

log = logging.getLogger("trainlab")


class _LightningNoise(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: ... litlogger/litmodels``) and its note that our model summary
    callback replaces its default one: printed on every run, they say nothing about this run."""

    NOISE = ("💡 Tip:", "Trainer already configured with model summary callbacks")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_LightningNoise())
# Lightning 2.6 calls torch's deprecated ``isinstance(treespec, LeafSpec)`` on every run: not ours to fix, not news
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)

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


def instantiate(config: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, but a bad setting surfaces as the class's own error (ValueError naming the key),
    not wrapped in Hydra's InstantiationException with a traceback through Hydra's internals."""
    from hydra.errors import InstantiationException

    try:
        return hydra.utils.instantiate(config, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, (ValueError, TypeError, FileNotFoundError)):
            raise cause from None
        raise


def apply_extras(cfg: DictConfig, write: bool = True) -> None:
    """Warnings filter, thread count, config tree on screen; with ``write``, also ``config.yaml`` (write_config).

    ``trainlab-train`` passes ``write=False`` and writes ``config.yaml`` once every check has passed.
    """
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    threads = torch_threads(cfg)
    if threads is not None:
        torch.set_num_threads(threads)
    if pl.utilities.rank_zero_only.rank != 0:
        return
    if write:
        write_config(cfg)
    if extras.get("print_config"):
        print_config_tree(cfg)


def write_config(cfg: DictConfig) -> Path:
    """``config.yaml`` (the resolved config) in the run directory: the first file a run writes, once every check
    has passed. A run resuming from a checkpoint inside its own directory first keeps the earlier run's files that
    it replaces as ``<name>.<k>`` (:func:`trainlab.run_dir.keep_earlier`)."""
    from trainlab.run_dir import inside, keep_earlier

    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("train") and inside(cfg.get("ckpt_path"), out):
        kept = keep_earlier(out)
        if kept:
            log.info(f"resuming in its own directory: the earlier run's {', '.join(p.name for p in kept)} are kept")
    path = out / "config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def check_data(datamodule: pl.LightningDataModule) -> None:
    """Find (or download) and read the data files now, so that missing or corrupt files refuse the run before it
    writes anything. Process 0 only: under DDP the other processes read them in ``fit``, after process 0."""
    if pl.utilities.rank_zero_only.rank != 0:
        return
    datamodule.prepare_data()
    datamodule.setup("fit")


def torch_threads(cfg: DictConfig) -> int | None:
    """The intra-op thread count ``extras.threads`` asks for; ``None`` leaves torch's default.

    ``auto``: torch's default (all cores, or ``OMP_NUM_THREADS``), except for several CPU training processes on one
    machine (``trainer.accelerator=cpu`` with ``trainer.devices`` > 1): each gets ``cores // processes`` threads.
    """
    threads = (cfg.get("extras") or {}).get("threads", "auto")
    if threads in (None, "auto"):
        trainer = cfg.get("trainer") or {}
        devices = trainer.get("devices", 1)
        processes = devices if isinstance(devices, int) else 1
        if isinstance(devices, list | ListConfig):
            processes = len(devices)
        if trainer.get("accelerator") == "cpu" and processes > 1 and not os.environ.get("OMP_NUM_THREADS"):
            return max(1, (os.cpu_count() or 1) // processes)
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"extras.threads={threads!r}: give auto or a number of threads >= 1")
    return threads


def print_config_tree(cfg: DictConfig) -> None:
    import rich
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    for key, value in cfg.items():
        branch = tree.add(str(key), style="bold")
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        branch.add(rich.syntax.Syntax(text.rstrip() or "{}", "yaml"))
    rich.print(tree)


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
    from trainlab.train import CONFIG_DIR

    options = {}
    for path in sorted((Path(CONFIG_DIR) / "model").glob("*.yaml")):
        target = (OmegaConf.load(path) or {}).get("_target_")
        if target:
            options[target] = path.stem
    return options


def build_net(cfg: DictConfig, input_shape: tuple[int, ...] | None = None) -> torch.nn.Module:
    """The network; with ``ensemble=independent`` an :class:`IndependentEnsemble` of ``ensemble.size`` of them,
    member k built and initialised from seed ``seed + k``."""
    ensemble = cfg.get("ensemble") or {}
    if ensemble.get("kind") != "independent":
        return build_single_net(cfg, input_shape)
    from trainlab.ensembles.independent import IndependentEnsemble

    size = int(ensemble.get("size", 5))
    if size < 2:
        raise ValueError(f"ensemble.size={size} must be >= 2")
    base_seed = cfg.get("seed") if cfg.get("seed") is not None else int(torch.initial_seed() % 2**31)
    state = rng.capture()
    members = []
    for k in range(size):
        torch.manual_seed(base_seed + k)
        members.append(build_single_net(cfg, input_shape))
    rng.restore(state)
    return IndependentEnsemble(members, vectorize=bool(ensemble.get("vectorize", True)))


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


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


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
    net = build_net(cfg, preprocess.output_shape if preprocess is not None else None)
    mixing, label_smoothing = build_mixing(cfg)
    scheduler_cfg = cfg.get("scheduler")
    scheduler, interval, monitor = None, "epoch", None
    ensemble = cfg.get("ensemble") or {}
    if ensemble.get("kind") == "snapshot":  # snapshot ensembles bring their own cyclic learning rate
        from functools import partial

        from trainlab.ensembles.snapshot import snapshot_schedule

        if scheduler_cfg:
            log.info("ensemble=snapshot: its cyclic cosine schedule replaces the configured scheduler")
        scheduler_cfg = None
        epochs = cfg.trainer.get("max_epochs")
        scheduler = partial(
            snapshot_schedule, total_steps=None, cycles=int(ensemble.cycles), epochs=int(epochs) if epochs else None
        )
        interval = "step"
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


def build_loggers(cfg: DictConfig) -> list[Logger]:
    loggers = []
    for name, lg_cfg in (cfg.get("logger") or {}).items():
        if lg_cfg is None:
            continue
        if not isinstance(lg_cfg, DictConfig) or "_target_" not in lg_cfg:
            raise ValueError(f"logger.{name} needs a _target_ (the logger class), got: {lg_cfg}")
        loggers.append(instantiate(lg_cfg))
    return loggers


def finish_loggers(loggers: list[Logger]) -> None:
    """Close W&B runs: flushes an offline run to disk, and lets the next job of a multirun start its own run
    (Lightning's WandbLogger would otherwise attach to the run still in progress)."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger" and getattr(lg, "_experiment", None) is not None:
            lg.experiment.finish()


def log_hyperparameters(cfg: DictConfig, module: pl.LightningModule, loggers: list[Logger]) -> None:
    """Send the resolved config (as a nested hierarchy) and the parameter count to every logger."""
    if not loggers:
        return
    hparams = OmegaConf.to_container(cfg, resolve=True)
    hparams.pop("extras", None)
    hparams["params/total"] = sum(p.numel() for p in module.parameters())
    hparams["params/trainable"] = sum(p.numel() for p in module.parameters() if p.requires_grad)
    for lg in loggers:
        lg.log_hyperparams(hparams)


def as_number(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def write_metrics(cfg: DictConfig, metrics: Mapping[str, Any]) -> Path:
    """``metrics.json`` in the run directory; also printed as a short summary.

    Written whole or not at all (a temporary file renamed into place): a run killed while writing it leaves the
    earlier ``metrics.json``, never a cut-off one.
    """
    path = Path(cfg.paths.output_dir) / "metrics.json"
    clean = {k: as_number(v) for k, v in metrics.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(clean, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    width = max(len(k) for k in clean)
    lines = [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}" for k, v in clean.items()]
    print(f"\n{cfg.task_name} summary ({path}):\n" + "\n".join(lines), file=sys.stderr)
    return path


#: settings that decide the shapes of a checkpoint's weights, and the classes whose state it restores (the optimizer's
#: moments, the scheduler's position): resuming needs them unchanged
ARCHITECTURE_KEYS = (
    "model",
    "activation",
    "data.input_shape",
    "data.num_classes",
    "ensemble.kind",
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


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Read a checkpoint with a clear error when it is missing or unreadable.

    Safely, with ``torch.load(weights_only=True)`` (tensors and plain containers only), unless ``trusted``
    (``trust_checkpoint=true``): unpickling arbitrary objects can run code, so it is the user's explicit choice.
    """
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={str(path)!r}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(
            f"ckpt_path={str(path)!r} is an empty file (0 bytes), not a checkpoint written by trainlab-train"
        )
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
