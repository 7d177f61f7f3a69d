"""Settings handed to a library are checked against that library before anything of the run is written.

The schema of :mod:`trainlab.validate` covers trainlab's own settings without importing torch. The settings that go
straight to a library's class (``optimizer.*`` to ``torch.optim``, ``scheduler.*`` to ``torch.optim.lr_scheduler``,
``trainer.*`` to Lightning's ``Trainer``, ``callbacks.*`` and ``logger.*`` to their classes) are checked here, after
the schema, by asking the library itself:

* its **signature**: a key the class has no parameter for, or a value that does not fit the parameter's type
  annotation (``trainer.deterministic=maybe``: ``bool | Literal['warn'] | None``) is named with what it takes;
* its **constructor**: the optimizer is built on one dummy parameter, the schedule on that optimizer and the trainer
  without callbacks or loggers, so the library's own range checks run now (``optimizer.betas=[2,0.9]``,
  ``trainer.devices=0``), not at the first optimizer step or after the first epoch. When one fails, the setting to
  blame is found by building again with one setting at a time.

Every problem is one line naming the setting, its value and the library's answer; :func:`check_library_settings`
raises them together as a :class:`~trainlab.errors.ConfigError` (exit code 2, nothing written).
"""

from __future__ import annotations

import collections.abc
import contextlib
import difflib
import inspect
import logging
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab.errors import ConfigError, one_line
from trainlab.settings import Setting

#: the keys Hydra reads itself, never passed to the class
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
#: trainlab's own keys in ``scheduler`` (how the schedule is stepped), not passed to the schedule's class
SCHEDULER_OWN_KEYS = ("interval", "monitor", "frequency")
#: the metrics a training run logs every epoch (:class:`trainlab.classifier.Classifier`), which a ``monitor`` setting
#: (checkpoint, early stopping, plateau schedule) can watch; ``train/reg_loss`` only with a weight penalty.
#: Lightning finds a monitor it never sees only after the first epoch (tests/test_bad_input_kinds.py compares the list
#: with a run's metrics).
METRICS = ("train/loss", "train/acc", "train/reg_loss", "val/loss", "val/acc", "val/acc_best")
_EMPTY = inspect.Parameter.empty


#: what Lightning's Trainer takes as ``precision`` (its ``_PRECISION_INPUT``: tests/test_bad_input_kinds.py compares)
PRECISIONS = Literal[
    "32-true", 32, "32", "16-mixed", 16, "16", "bf16-mixed", "bf16", "16-true", "bf16-true", "64-true", 64, "64",
    "transformer-engine", "transformer-engine-float16",
]  # fmt: skip
PROBABILITY_HIGH_OPEN = {"low": 0, "high": 1, "high_open": True}  # [0, 1)
_OPTIMIZER = {
    "lr": Annotated[float, Setting("learning rate", low=0, low_open=True)],
    "weight_decay": Annotated[float, Setting("weight decay", low=0)],
    "momentum": Annotated[float, Setting("momentum", **PROBABILITY_HIGH_OPEN)],
    "nesterov": Annotated[bool, Setting("Nesterov momentum")],
}
_SCHEDULER = {
    "max_lr": Annotated[float, Setting("one-cycle's peak learning rate", low=0, low_open=True)],
    "pct_start": Annotated[float, Setting("one-cycle's warm-up share", low=0, high=1, low_open=True, high_open=True)],
    "gamma": Annotated[float, Setting("the schedule's factor", low=0, low_open=True)],
    "step_size": Annotated[int, Setting("epochs between decays", low=1)],
    "T_max": Annotated[int, Setting("the cosine's length in epochs (or steps)", low=1)],
    "eta_min": Annotated[float, Setting("the cosine's lowest learning rate", low=0)],
}
#: what Lightning's Trainer takes without a word and fails on in the middle of fit (or ignores)
_TRAINER = {
    "max_epochs": Annotated[int, Setting("epochs", low=1)],
    "precision": Annotated[PRECISIONS, Setting("numeric precision")],
    "accelerator": Annotated[Literal["auto", "cpu", "gpu", "cuda", "mps", "tpu"], Setting("device kind")],
    "min_epochs": Annotated[int, Setting("epochs before early stopping may stop the run", low=0)],
    "min_steps": Annotated[int, Setting("steps before early stopping may stop the run", low=0)],
    "check_val_every_n_epoch": Annotated[int, Setting("epochs between validations", low=1)],
    "val_check_interval": Annotated[
        float, Setting("batches (or share of an epoch) between validations", low=0, low_open=True)
    ],
    "accumulate_grad_batches": Annotated[int, Setting("batches whose gradients add up to one step", low=1)],
    "gradient_clip_val": Annotated[float, Setting("the gradient clipping threshold (0: none)", low=0)],
    "num_sanity_val_steps": Annotated[int, Setting("validation batches checked before training (-1: all)", low=-1)],
    "log_every_n_steps": Annotated[int, Setting("steps between logged training metrics (0: none)", low=0)],
    "enable_progress_bar": Annotated[bool, Setting("the progress bar")],
    "enable_model_summary": Annotated[bool, Setting("the model summary")],
}
#: the settings of library classes, which are not ours to annotate (:mod:`trainlab.settings`), by the class's path
#: or a package prefix ending in ``.`` (the most specific one counts); a subclass of one of them inherits them
_EARLY_STOPPING = {"patience": Annotated[int, Setting("epochs without improvement before stopping", low=1)]}
_MODEL_CHECKPOINT = {"save_top_k": Annotated[int, Setting("best checkpoints kept (-1: all)", low=-1)]}
LIBRARY: dict[str, dict[str, Any]] = {  # read with ast (trainlab.settings): constants only, no comprehensions
    "torch.optim.": _OPTIMIZER,
    "torch.optim.lr_scheduler.": _SCHEDULER,
    "pytorch_lightning.Trainer": _TRAINER,
    "lightning.pytorch.Trainer": _TRAINER,
    "lightning.Trainer": _TRAINER,
    "pytorch_lightning.callbacks.EarlyStopping": _EARLY_STOPPING,
    "lightning.pytorch.callbacks.EarlyStopping": _EARLY_STOPPING,
    "pytorch_lightning.callbacks.ModelCheckpoint": _MODEL_CHECKPOINT,
    "lightning.pytorch.callbacks.ModelCheckpoint": _MODEL_CHECKPOINT,
}


#: the parts of a config whose settings go to a library
GROUPS = ("optimizer", "scheduler", "trainer", "callbacks", "logger")


def check_library_settings(cfg: DictConfig, groups: tuple[str, ...] = GROUPS) -> None:
    """Raise :class:`ConfigError` listing every library setting of ``cfg`` (in ``groups``) that its library refuses
    (see the module's docstring). Imports torch and Lightning; run after :func:`trainlab.validate.validate`.
    trainlab-eval checks the trainer and loggers only: it never steps the optimizer a checkpoint was trained with."""
    problems = library_problems(cfg, groups)
    if problems:
        raise ConfigError("invalid settings, nothing was run:\n  " + "\n  ".join(problems))


def library_problems(cfg: DictConfig, groups: tuple[str, ...] = GROUPS) -> list[str]:
    problems: list[str] = []
    optimizer = None
    if "optimizer" in groups and _node(cfg, "optimizer") is not None:
        optimizer_problems, optimizer = _optimizer(cfg)
        problems += optimizer_problems
    if "scheduler" in groups and _node(cfg, "scheduler") is not None and optimizer is not None:
        problems += _scheduler(cfg, optimizer)
    if "trainer" in groups and _node(cfg, "trainer") is not None:
        problems += _trainer(cfg)
    if "callbacks" in groups:
        problems += monitor_problems(cfg)
    for group in ("callbacks", "logger"):
        if group not in groups:
            continue
        for name, node in (_node(cfg, group) or {}).items():
            if not (isinstance(node, Mapping) and "_target_" in node):
                continue
            found = signature_problems(f"{group}.{name}", node)
            cls = target_class(f"{group}.{name}", node["_target_"])
            if not found and group == "callbacks" and _is_library_class(cls):  # Lightning's: built now, no files
                params = parameters(cls)[0]
                settings = {k: v for k, v in node.items() if k not in HYDRA_KEYS}

                def build(kwargs: dict[str, Any], cls: Any = cls) -> Any:
                    with _quiet():
                        return cls(**kwargs)

                found = construction_problems(f"{group}.{name}", node["_target_"], build, settings, _defaults(params))
            problems += found
    return problems


def monitor_problems(cfg: DictConfig) -> list[str]:
    """A ``monitor`` (``callbacks.<name>.monitor``, ``scheduler.monitor``) that names no metric the run logs."""
    watchers = [(f"callbacks.{name}", node) for name, node in (_node(cfg, "callbacks") or {}).items()]
    watchers.append(("scheduler", _node(cfg, "scheduler")))
    problems = []
    for key, node in watchers:
        if not isinstance(node, Mapping) or not isinstance(node.get("monitor"), str) or node["monitor"] in METRICS:
            continue
        monitor = node["monitor"]
        close = difflib.get_close_matches(monitor, METRICS, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else "."
        problems.append(
            f"{key}.monitor={monitor!r}: not a metric this run logs{hint} It logs {', '.join(METRICS)} "
            "(train/reg_loss with a weight penalty)"
        )
    return problems


# ---- what a class takes ----
def target_class(key: str, target: Any) -> Callable[..., Any]:
    """The class (or function) ``<key>._target_`` names; :class:`ConfigError` when there is none."""
    from hydra._internal.utils import _locate  # hydra.utils.get_object, without its error log

    try:
        found = _locate(str(target))
    except Exception as err:  # noqa: BLE001 - any failure to import it: the setting names nothing to call
        raise ConfigError(f"{key}._target_={target!r}: no such class ({one_line(err)})") from None
    if not callable(found):
        raise ConfigError(f"{key}._target_={target!r}: names a {type(found).__name__}, not a class")
    return found


def parameters(cls: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    """The keyword parameters of ``cls`` (its constructor) and whether it also takes any other keyword."""
    try:
        signature = inspect.signature(cls, eval_str=True)
    except Exception:  # noqa: BLE001 - annotations that do not evaluate: read them as written
        try:
            signature = inspect.signature(cls)
        except (TypeError, ValueError):
            return {}, True
    params = {
        n: p
        for n, p in signature.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return params, any_keyword


def _is_target(value: Any) -> bool:
    return isinstance(value, Mapping) and "_target_" in value


def fits(value: Any, annotation: Any) -> bool:
    """Whether a config value (plain Python: None, bool, int, float, str, list, dict) fits a type annotation.

    Annotations this cannot read (type variables, callables, protocols, strings) accept every value: only what
    the annotation clearly rules out is refused. A ``{_target_: ...}`` mapping fits any class: Hydra builds it.
    """
    if annotation is _EMPTY or annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if _is_target(value):
        return True
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple or annotation is tuple:
        if not isinstance(value, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(fits(v, args[0]) for v in value)
        return not args or (len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True)))
    sequences = (list, collections.abc.Sequence, collections.abc.MutableSequence, collections.abc.Iterable)
    if annotation is list or origin in sequences:
        if not isinstance(value, list | tuple):
            return False
        return not args or all(fits(v, args[0]) for v in value)
    if annotation is dict or origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        return isinstance(value, Mapping)
    if isinstance(annotation, type) and origin is None:
        if annotation in (list, tuple, dict, set):
            return isinstance(value, annotation)
        if value is None or isinstance(value, bool | int | float | str | list | dict):
            return isinstance(value, annotation)
    return True  # a type variable, a callable, a protocol...: not read


def describe(annotation: Any) -> list[str]:
    """What an annotation takes, as alternatives in words: ``["true", "false", "'warn'", "null"]``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return ["null"]
    if origin is typing.Union or origin is types.UnionType:
        return list(dict.fromkeys(d for a in args for d in describe(a)))
    if origin is typing.Literal:
        return [_literal(a) for a in args]
    words = {bool: ["true", "false"], int: ["an integer"], float: ["a number"], str: ["a string"]}
    if annotation in words:
        return words[annotation]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return [f"a list of {_plural(args[0])}"]
        if args and len({tuple(describe(a)) for a in args}) == 1:
            return [f"a list of {len(args)} {_plural(args[0])}"]
        return [f"a list [{', '.join(' or '.join(describe(a)) for a in args)}]"]
    if annotation is list or origin in (list, collections.abc.Sequence, collections.abc.Iterable):
        return [f"a list of {_plural(args[0])}"] if args else ["a list"]
    if annotation is dict or origin in (dict, collections.abc.Mapping):
        return ["a mapping"]
    name = getattr(annotation, "__name__", None) or str(annotation)
    return [f"a {name}"]


def _plural(annotation: Any) -> str:
    words = describe(annotation)
    if words == ["a number"] or (len(words) == 2 and "a number" in words):
        return "numbers"
    if words == ["an integer"]:
        return "integers"
    if words == ["a string"]:
        return "strings"
    return " or ".join(words)


def _literal(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _alternatives(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _value(value: Any) -> str:
    return repr(value)


def signature_problems(
    key: str, node: Mapping[str, Any], supplied: tuple[str, ...] = (), own: tuple[str, ...] = ()
) -> list[str]:
    """``<key>.<name>=<value>: ...`` for each setting of ``node`` that the class ``node['_target_']`` has no parameter
    for, and (for a class of a library, not of trainlab) each value that does not fit its parameter's annotation.
    ``supplied``: parameters trainlab passes itself (not settings); ``own``: trainlab's keys in the node."""
    target = node["_target_"]
    cls = target_class(key, target)
    params, any_keyword = parameters(cls)
    settings = {k: v for k, v in node.items() if k not in HYDRA_KEYS and k not in own}
    known = [n for n in params if n not in supplied]
    problems = []
    for name, value in settings.items():
        if name in params or any_keyword:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listed = ", ".join(known) + (f" (and trainlab's {', '.join(own)})" if own else "")
        problems.append(
            f"{key}.{name}={_value(value)}: {target} has no setting '{name}'{hint}; its settings are {listed}"
        )
    if not _is_library_class(cls):
        return problems  # trainlab's own classes: the schema and the class's own checks say what they take
    for name, value in settings.items():
        param = params.get(name)
        if param is None or fits(value, param.annotation):
            continue
        problems.append(f"{key}.{name}={_value(value)}: {target} takes {_alternatives(describe(param.annotation))}")
    return problems


def _is_library_class(cls: Any) -> bool:
    init = getattr(cls, "__init__", None)
    module = getattr(init, "__module__", None) or getattr(cls, "__module__", "")
    return not str(module).startswith("trainlab")


# ---- building it, and finding the setting to blame ----
def construction_problems(
    key: str, target: str, build: Callable[[dict[str, Any]], Any], settings: dict[str, Any], defaults: dict[str, Any]
) -> list[str]:
    """Build with ``settings`` (``build(kwargs)``); when the library refuses, find the settings to blame.

    First each setting is put back to its default in turn: if that one change lets the build pass, it is the one.
    Else the required settings alone are built, and each other setting added to them alone: every one that fails
    so is named. Else the settings the library's message names. ``defaults``: the parameters' default values.
    """
    try:
        build(settings)
        return []
    except Exception as err:  # noqa: BLE001 - whatever the library raises, it refused these settings
        first = err

    def line(names: list[str], err: BaseException) -> str:
        what = ", ".join(f"{key}.{n}={_value(settings[n])}" for n in names) or key
        return f"{what}: {target} refuses {'it' if len(names) == 1 else 'them'} ({one_line(err, 300)})"

    for name in settings:
        if name in defaults and settings[name] != defaults[name]:
            with contextlib.suppress(Exception):
                build({**settings, name: defaults[name]})
                return [line([name], first)]
    required = {n: v for n, v in settings.items() if n not in defaults}
    try:
        build(required)
    except Exception as err:  # noqa: BLE001
        return [line(list(required), err)]
    blamed = []
    for name, value in settings.items():
        if name in required or value == defaults.get(name, _EMPTY):
            continue
        try:
            build({**required, name: value})
        except Exception as err:  # noqa: BLE001
            blamed.append(line([name], err))
    if blamed:
        return blamed
    named = [n for n in settings if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", str(first))]
    return [line(named, first)]


def _defaults(params: dict[str, inspect.Parameter]) -> dict[str, Any]:
    return {n: p.default for n, p in params.items() if p.default is not _EMPTY}


def _node(cfg: DictConfig, key: str) -> Any:
    """``cfg.<key>`` as plain Python, resolved. A value that cannot be resolved yet (``${hydra:runtime.output_dir}``
    before the job starts, when a reused run directory is checked) is left out: the run fills it in."""
    node = OmegaConf.select(cfg, key, default=None)  # raises when a value cannot be resolved
    if not isinstance(node, DictConfig | ListConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation that resolves only in the job: resolve what can be
        if isinstance(node, ListConfig):
            return [_node(cfg, f"{key}[{i}]") for i in range(len(node))]
        plain = {}
        for name in node:
            try:
                plain[str(name)] = _node(cfg, f"{key}.{name}")
            except Exception:  # noqa: BLE001 - left out: the run fills it in
                continue
        return plain


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No warnings and no Lightning info lines while a throwaway object is built (the run builds the real one)."""
    names = ("pytorch_lightning", "lightning_fabric", "lightning", "torch")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _optimizer(cfg: DictConfig) -> tuple[list[str], Any]:
    """Problems of ``optimizer``, and the optimizer built on one dummy parameter (None when it cannot be built)."""
    import torch

    node = _node(cfg, "optimizer")
    if not _is_target(node):
        return [], None
    problems = signature_problems("optimizer", node, supplied=("params",))
    if problems:
        return problems, None
    cls = target_class("optimizer", node["_target_"])
    settings = {k: v for k, v in node.items() if k not in HYDRA_KEYS}
    built: list[Any] = []

    def build(kwargs: dict[str, Any]) -> Any:
        optimizer = cls([torch.zeros(1, requires_grad=True)], **kwargs)
        built.append(optimizer)
        return optimizer

    problems = construction_problems("optimizer", node["_target_"], build, settings, _defaults(parameters(cls)[0]))
    return problems, (None if problems else built[0])


def _scheduler(cfg: DictConfig, optimizer: Any) -> list[str]:
    """Problems of ``scheduler``: built on the run's optimizer (over a dummy parameter), as the run will build it."""
    node = _node(cfg, "scheduler")
    if not _is_target(node):
        return []
    problems = signature_problems("scheduler", node, supplied=("optimizer",), own=SCHEDULER_OWN_KEYS)
    if problems:
        return problems
    cls = target_class("scheduler", node["_target_"])
    params = parameters(cls)[0]
    settings = {k: v for k, v in node.items() if k not in HYDRA_KEYS and k not in SCHEDULER_OWN_KEYS}

    def build(kwargs: dict[str, Any]) -> Any:
        kwargs = dict(kwargs)
        # the run fills in total_steps (OneCycleLR) from the trainer's estimate when it is null
        if "total_steps" in params and kwargs.get("total_steps") is None and kwargs.get("epochs") is None:
            kwargs["total_steps"] = 1000
        optimizer.param_groups[0].pop("initial_lr", None)  # set by the previous build: each starts afresh
        return cls(optimizer, **kwargs)

    return construction_problems("scheduler", node["_target_"], build, settings, _defaults(params))


def _trainer(cfg: DictConfig) -> list[str]:
    """Problems of ``trainer``: its signature, then Lightning's own checks in ``Trainer(...)`` (without the run's
    callbacks and loggers, which are built with the run)."""
    import hydra

    node = _node(cfg, "trainer")
    if not _is_target(node):
        return []
    supplied = ("callbacks", "logger")
    problems = signature_problems("trainer", node, supplied=supplied)
    if problems:
        return problems
    cls = target_class("trainer", node["_target_"])
    params = parameters(cls)[0]
    settings = {k: v for k, v in node.items() if k not in HYDRA_KEYS and k not in supplied}

    def build(kwargs: dict[str, Any]) -> Any:
        # nested objects (plugins: [{_target_: ...}]) are built as Hydra builds them for the run
        nested = {k for k, v in kwargs.items() if _is_target(v) or (isinstance(v, list) and any(map(_is_target, v)))}
        kwargs = {k: hydra.utils.instantiate(v, _convert_="all") if k in nested else v for k, v in kwargs.items()}
        with _quiet():
            return cls(**kwargs, callbacks=[], logger=False)

    return construction_problems("trainer", node["_target_"], build, settings, _defaults(params))
