"""Bad input gets a clear answer before anything runs: a typed schema of every documented setting.

Two checks, both before training starts:

* :func:`check_command_line` (run by ``trainlab-train`` / ``trainlab-eval`` before Hydra): an unknown option of a
  config group (``activation=relu6``) or an unknown top-level setting (``optimiser.lr=0.1``) is answered with the
  valid choices and, when one is close, a suggestion. Exit code 2, nothing created.
* :func:`validate` (run on the composed config): every setting in :data:`RULES` has a type and an allowed range;
  every violation is reported at once, naming the key, the value and what is allowed. Exit code 2, before any
  data is loaded or any checkpoint written.

The schema is one table (:data:`RULES`), not checks scattered over the code; the classes' own checks stay as a
second line for people who build them from Python. ``docs/bad_inputs.md`` lists every bad input the tests try and
the message it gets.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab import CONFIG_DIR
from trainlab.errors import ConfigError

Bound = float | Callable[[DictConfig], float] | None

#: owners of the model and data rules below (Rule.owners)
MLP, CNN, RESNET = "trainlab.models.mlp.MLP", "trainlab.models.cnn.CNN", "trainlab.models.resnet.ResNet"
TRAINLAB_DATA = ("trainlab.data.",)


@dataclass(frozen=True)
class Rule:
    """``key`` (dotted; checked when present and not null) must be ``kind`` within the bounds.

    ``kind``: ``int``, ``number``, ``bool`` or ``choice``. ``low``/``high`` may depend on the config (a
    callable), e.g. the image size. ``what`` says in a few words what the setting is. ``owners``: the classes
    (``_target_`` of the key's group; a name ending in ``.`` is a package prefix) whose setting it is: a rule of
    trainlab's CNN does not judge a user's model that happens to have a ``pool`` argument. Empty: every class.
    """

    key: str
    kind: str
    what: str
    low: Bound = None
    high: Bound = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str | int, ...] = ()
    owners: tuple[str, ...] = ()

    def applies(self, cfg: DictConfig) -> bool:
        if not self.owners:
            return True
        target = OmegaConf.select(cfg, f"{self.key.split('.')[0]}._target_", default=None)
        return isinstance(target, str) and any(
            target.startswith(o) if o.endswith(".") else target == o for o in self.owners
        )

    def allowed(self, cfg: DictConfig) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(dict.fromkeys(map(str, self.choices)))  # 32 and '32' read alike
        noun = "an integer" if self.kind == "int" else "a number"
        low, high = _bound(self.low, cfg), _bound(self.high, cfg)
        if low is not None and high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{_num(low)}, {_num(high)}{')' if self.high_open else ']'}"
        if low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {_num(low)}"
        if high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {_num(high)}"
        return noun

    def check(self, value: Any, cfg: DictConfig) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":  # 32 (an int, as Hydra reads it) and '32' are both choices when both are listed
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        low, high = _bound(self.low, cfg), _bound(self.high, cfg)
        if low is not None and (value <= low if self.low_open else value < low):
            return False
        return not (high is not None and (value >= high if self.high_open else value > high))


def _bound(bound: Bound, cfg: DictConfig) -> float | None:
    return bound(cfg) if callable(bound) else bound


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _image_side(cfg: DictConfig) -> float:
    shape = list(cfg.data.input_shape)
    return float(min(shape[1:])) if len(shape) == 3 else math.inf


#: what Lightning's Trainer takes as ``precision`` (its ``_PRECISION_INPUT``: tests/test_bad_input_kinds.py compares)
PRECISIONS: tuple[str | int, ...] = (
    "32-true",
    32,
    "32",
    "16-mixed",
    16,
    "16",
    "bf16-mixed",
    "bf16",
    "16-true",
    "bf16-true",
    "64-true",
    64,
    "64",
    "transformer-engine",
    "transformer-engine-float16",
)
PROBABILITY = {"low": 0.0, "high": 1.0}  # [0, 1]
OPEN_UNIT = {"low": 0.0, "high": 1.0, "low_open": True, "high_open": True}  # (0, 1)
UNIT_HIGH_OPEN = {"low": 0.0, "high": 1.0, "high_open": True}  # [0, 1)
#: every documented setting with a type and a range
RULES: tuple[Rule, ...] = (
    # data
    Rule("data.batch_size", "int", "samples per batch", low=1, owners=TRAINLAB_DATA),
    Rule("data.eval_batch_size", "int", "samples per evaluation batch", low=1, owners=TRAINLAB_DATA),
    Rule("data.num_workers", "int", "DataLoader worker processes", low=0, owners=TRAINLAB_DATA),
    Rule("data.loader", "choice", "how batches are made", choices=("memory", "dataloader"), owners=TRAINLAB_DATA),
    Rule("data.val_fraction", "number", "share of digits held out for validation", **OPEN_UNIT, owners=TRAINLAB_DATA),
    Rule("data.test_fraction", "number", "share of digits held out for testing", **OPEN_UNIT, owners=TRAINLAB_DATA),
    Rule("data.val_size", "int", "training images held out for validation", low=1, owners=TRAINLAB_DATA),
    Rule("data.split_seed", "int", "seed of the train/validation split", low=0, owners=TRAINLAB_DATA),
    # model
    Rule("model.depth", "int", "hidden layers (MLP) or layers (ResNet)", low=1, owners=(MLP, RESNET)),
    Rule("model.width", "int", "units or channels per layer", low=1, owners=(MLP, RESNET)),
    Rule("model.hidden", "int", "units of the CNN's hidden layer", low=1, owners=(CNN,)),
    Rule("model.pool", "choice", "the CNN's pooling", choices=("max", "avg", "none"), owners=(CNN,)),
    # activation, init, preprocess
    Rule("activation.negative_slope", "number", "slope for x < 0", low=0),
    Rule("activation.alpha", "number", "ELU's saturation value", low=0, low_open=True),
    Rule("activation.pieces", "int", "maxout's pieces", low=2),
    Rule("init.std", "number", "standard deviation of the weights", low=0, low_open=True),
    Rule("init.gain", "number", "the init's gain", low=0, low_open=True),
    Rule("init.distribution", "choice", "the init's distribution", choices=("normal", "uniform")),
    Rule("init.mode", "choice", "the fan the init keeps", choices=("fan_in", "fan_out")),
    Rule("preprocess.components", "int", "PCA components kept", low=1),
    Rule("preprocess.eps", "number", "whitening's regulariser", low=0),
    Rule("preprocess.mode", "choice", "what the statistics are taken over", choices=("channel", "image")),
    # augmentation
    Rule("augment.hflip.p", "number", "probability of a horizontal flip", **PROBABILITY),
    Rule("augment.vflip.p", "number", "probability of a vertical flip", **PROBABILITY),
    Rule(
        "augment.crop.padding", "int", "pixels of padding before the crop", low=0, high=lambda cfg: _image_side(cfg) - 1
    ),
    Rule("augment.cutout.size", "int", "side of the cut-out square", low=1, high=_image_side),
    Rule("augment.crop.padding_mode", "choice", "how the crop pads", choices=("constant", "reflect")),
    Rule("augment.color_jitter.brightness", "number", "brightness jitter", low=0),
    Rule("augment.color_jitter.contrast", "number", "contrast jitter", low=0),
    Rule("augment.color_jitter.saturation", "number", "saturation jitter", low=0),
    Rule("augment.rotate.degrees", "number", "largest rotation", low=0, high=180),
    Rule("augment.translate.fraction", "number", "largest shift, as a fraction of the side", **UNIT_HIGH_OPEN),
    # regularizers
    Rule("regularizer.dropout.p", "number", "probability of zeroing a unit", **UNIT_HIGH_OPEN),
    Rule("regularizer.alpha_dropout.p", "number", "probability of dropping a unit", **UNIT_HIGH_OPEN),
    Rule("regularizer.dropconnect.p", "number", "probability of zeroing a weight", **UNIT_HIGH_OPEN),
    Rule("regularizer.dropconnect.samples", "int", "samples of DropConnect's inference", low=1),
    Rule("regularizer.dropconnect.inference", "choice", "DropConnect's inference", choices=("mean", "gaussian")),
    Rule(
        "regularizer.fractional_pool.intervals",
        "choice",
        "fractional pooling's intervals",
        choices=("random", "pseudo_random"),
    ),
    Rule("regularizer.fractional_pool.test_samples", "int", "test passes averaged", low=1),
    Rule("regularizer.l1.weight", "number", "L1 penalty weight", low=0),
    Rule("regularizer.l2.weight", "number", "L2 penalty weight", low=0),
    Rule("regularizer.elastic_net.l1_weight", "number", "elastic net's L1 weight", low=0),
    Rule("regularizer.elastic_net.l2_weight", "number", "elastic net's L2 weight", low=0),
    Rule("regularizer.mixup.alpha", "number", "mixup's Beta(alpha, alpha)", low=0, low_open=True),
    Rule("regularizer.cutmix.alpha", "number", "CutMix's Beta(alpha, alpha)", low=0, low_open=True),
    Rule("regularizer.label_smoothing.eps", "number", "label smoothing", **UNIT_HIGH_OPEN),
    Rule(
        "regularizer.stochastic_depth.p_L",
        "number",
        "survival probability of the last block",
        low=0,
        high=1,
        low_open=True,
    ),
    Rule(
        "regularizer.fractional_pool.ratio",
        "number",
        "fractional pooling's output/input ratio",
        low=0.5,
        high=1,
        high_open=True,
    ),
    # optimisation
    Rule("optimizer.lr", "number", "learning rate", low=0, low_open=True),
    Rule("optimizer.weight_decay", "number", "weight decay", low=0),
    Rule("optimizer.momentum", "number", "momentum", **UNIT_HIGH_OPEN),
    Rule("scheduler.max_lr", "number", "one-cycle's peak learning rate", low=0, low_open=True),
    Rule("scheduler.pct_start", "number", "one-cycle's warm-up share", **OPEN_UNIT),
    Rule("scheduler.gamma", "number", "the schedule's factor", low=0, low_open=True),
    Rule("scheduler.step_size", "int", "epochs between decays", low=1),
    Rule("scheduler.T_max", "int", "the cosine's length in epochs (or steps)", low=1),
    Rule("scheduler.eta_min", "number", "the cosine's lowest learning rate", low=0),
    # training
    Rule("trainer.max_epochs", "int", "epochs", low=1),
    Rule("trainer.precision", "choice", "numeric precision", choices=PRECISIONS),
    Rule("trainer.accelerator", "choice", "device kind", choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu")),
    # what Lightning's Trainer takes without a word and fails on in the middle of fit (or ignores)
    Rule("trainer.min_epochs", "int", "epochs before early stopping may stop the run", low=0),
    Rule("trainer.min_steps", "int", "steps before early stopping may stop the run", low=0),
    Rule("trainer.check_val_every_n_epoch", "int", "epochs between validations", low=1),
    Rule(
        "trainer.val_check_interval",
        "number",
        "batches (or share of an epoch) between validations",
        low=0,
        low_open=True,
    ),
    Rule("trainer.accumulate_grad_batches", "int", "batches whose gradients add up to one step", low=1),
    Rule("trainer.gradient_clip_val", "number", "the gradient clipping threshold (0: none)", low=0),
    Rule("trainer.num_sanity_val_steps", "int", "validation batches checked before training (-1: all)", low=-1),
    Rule("trainer.log_every_n_steps", "int", "steps between logged training metrics (0: none)", low=0),
    Rule("callbacks.early_stopping.patience", "int", "epochs without improvement before stopping", low=1),
    Rule("callbacks.model_checkpoint.save_top_k", "int", "best checkpoints kept (-1: all)", low=-1),
    Rule("seed", "int", "random seed", low=0, high=2**32 - 1),
    Rule("trust_checkpoint", "bool", "whether to unpickle more than weights"),
    Rule("overwrite", "bool", "whether to run in a directory that holds an earlier run"),
    Rule("channels_last", "bool", "the channels-last memory format"),
    Rule("train", "bool", "whether to train"),
    Rule("test", "bool", "whether to test"),
    # every other switch a config file sets to true/false: "no", "0" or "off" must not read as true
    Rule("extras.print_config", "bool", "whether to print the config tree"),
    Rule("extras.ignore_warnings", "bool", "whether to silence Python warnings"),
    Rule("extras.curves", "bool", "whether to plot the learning curves"),
    Rule("data.download", "bool", "whether to download missing data files", owners=TRAINLAB_DATA),
    Rule("trainer.enable_progress_bar", "bool", "the progress bar"),
    Rule("trainer.enable_model_summary", "bool", "the model summary"),
    Rule("ensemble.vectorize", "bool", "whether the members run as one batched network"),
    Rule("optimizer.nesterov", "bool", "Nesterov momentum"),
    Rule("regularizer.fractional_pool.overlapping", "bool", "overlapping pooling regions"),
    *(
        Rule(f"regularizer.{penalty}.{part}", "bool", f"whether the {penalty} penalty includes {what}")
        for penalty in ("l1", "l2", "elastic_net")
        for part, what in (("include_bias", "biases"), ("include_norm", "normalization weights"))
    ),
    Rule("callbacks.activation_stats.plot", "bool", "whether to plot the activation statistics"),
    # ensembles, recipe
    Rule("ensemble.size", "int", "members of the ensemble", low=2),
    Rule("ensemble.cycles", "int", "snapshot cycles", low=1),
    Rule("ensemble.keep", "int", "snapshots kept (the last ones)", low=1),
    Rule("ensemble.decay", "number", "EMA decay", **OPEN_UNIT),
    Rule("ensemble.swa_epoch_start", "number", "when SWA starts (share of the epochs)", **OPEN_UNIT),
    Rule("recipe.samples", "int", "images of the overfitting sample", low=1),
    Rule("recipe.max_epochs", "int", "epochs of the overfitting check", low=1),
    Rule("recipe.batches", "int", "batches of the initial-loss check", low=1),
    Rule("recipe.num_training", "int", "steps of the learning-rate range test", low=2),
    Rule("recipe.min_lr", "number", "lowest learning rate of the range test", low=0, low_open=True),
    Rule(
        "recipe.max_lr",
        "number",
        "highest learning rate of the range test",
        low=lambda cfg: cfg.recipe.min_lr,
        low_open=True,
    ),
)


RULE_KEYS = frozenset(rule.key for rule in RULES)


def _copied_from(cfg: DictConfig, key: str) -> str | None:
    """The key whose value ``key`` copies (``scheduler.T_max: ${trainer.max_epochs}``), else None: a bad value is
    reported once, at the setting it comes from."""
    import re

    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent or not OmegaConf.is_interpolation(parent, leaf):
        return None
    match = re.fullmatch(r"\$\{([\w.]+)\}", str(OmegaConf.to_container(parent, resolve=False)[leaf]))
    return match.group(1) if match else None


def validate(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every setting of ``cfg`` that breaks :data:`RULES`, and every pair of
    settings that breaks a rule of :data:`trainlab.combinations.COMBINATIONS` (the one table of rules that depend on
    two settings)."""
    from trainlab.combinations import combination_problems

    problems = []
    bad = set()
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default=None, throw_on_resolution_failure=False)
        if value is None or isinstance(value, DictConfig | ListConfig) or not rule.applies(cfg):
            continue
        if not rule.check(value, cfg) and _copied_from(cfg, rule.key) not in RULE_KEYS:
            problems.append(f"{rule.key}={value!r}: {rule.what} must be {rule.allowed(cfg)}")
            bad.add(rule.key)
    shape = OmegaConf.select(cfg, "data.input_shape", default=None, throw_on_resolution_failure=False)
    if shape is not None and not _is_shape(shape):
        value = OmegaConf.to_container(shape) if isinstance(shape, ListConfig) else shape
        problems.append(
            f"data.input_shape={value!r}: the shape of one sample must be [channels, height, width] (images) or "
            "[features] (vectors), positive integers"
        )
        bad.add("data.input_shape")
    threads = OmegaConf.select(cfg, "extras.threads", default=None, throw_on_resolution_failure=False)
    if threads not in (None, "auto") and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        problems.append(f"extras.threads={threads!r}: PyTorch's threads must be auto or an integer >= 1")
        bad.add("extras.threads")
    problems += combination_problems(cfg, skip=bad)
    if not bad & {"trainer.accelerator"}:
        problems += machine_problems(cfg)
    if problems:
        raise ConfigError("invalid settings, nothing was run:\n  " + "\n  ".join(problems))


def _is_shape(shape: Any) -> bool:
    return (
        isinstance(shape, ListConfig | list)
        and len(shape) in (1, 3)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
    )


def machine_problems(cfg: DictConfig) -> list[str]:
    """Settings this machine cannot honour: a GPU accelerator without a GPU, more GPU devices than it has.

    torch is imported only when a GPU is asked for (``trainer=gpu``/``ddp``), to count the devices."""
    trainer = cfg.get("trainer") or {}
    accelerator = trainer.get("accelerator")
    if accelerator == "tpu":
        import importlib.util

        if importlib.util.find_spec("torch_xla") is None:
            return [
                "trainer.accelerator=tpu: this machine has no TPU (torch_xla is not installed); use trainer=cpu, "
                "trainer=gpu or trainer.accelerator=auto"
            ]
        return []
    if accelerator not in ("gpu", "cuda", "mps"):
        return []
    import torch

    if accelerator == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return ["trainer.accelerator=mps: this machine has no Apple GPU (MPS); use trainer=cpu or accelerator=auto"]
        return []
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return [
            f"trainer.accelerator={accelerator}: this machine has no CUDA GPU; use trainer=cpu (or trainer=default, "
            "which takes a GPU when there is one), or trainer=ddp_cpu for data parallel on the CPU"
        ]
    devices = trainer.get("devices", 1)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > count:
        return [f"trainer.devices={devices}: this machine has {count} GPU(s); use trainer.devices={count} or fewer"]
    return []


# ---- the command line, before Hydra ----
def config_groups(config_dirs: Sequence[Path] = (CONFIG_DIR,)) -> dict[str, list[str]]:
    """Every config group and its options (``<config dir>/<group>/<option>.yaml``), over all ``config_dirs``."""
    groups: dict[str, set[str]] = {}
    for root in config_dirs:
        for d in sorted(p for p in Path(root).rglob("*") if p.is_dir()):
            options = {f.stem for f in d.glob("*.yaml")}
            if options:
                groups.setdefault(str(d.relative_to(root)), set()).update(options)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def _top_level_keys(config_name: str, config_dirs: Sequence[Path] = (CONFIG_DIR,)) -> set[str]:
    for root in config_dirs:
        path = Path(root) / f"{config_name}.yaml"
        if path.is_file():
            data = OmegaConf.load(path)
            return {str(k) for k in data if k != "defaults"} if isinstance(data, DictConfig) else set()
    return set()


@dataclass(frozen=True)
class CommandLine:
    """What Hydra makes of a command line (its own argparse parser): its flags, and the overrides they leave.

    ``overrides`` are the positional ``key=value`` arguments only: the arguments of Hydra's flags
    (``-sc install=bash``, ``-cn eval``, ``--info defaults``) are not overrides. ``config_dirs`` are where the
    config's groups are (``-cd`` first, then ``-cp`` or configs/). ``check_skipped`` says why the overrides are not
    checked (``-sc``: they are completion commands; ``-cp pkg://...``: the configs are elsewhere), else ``None``.
    ``runs_job``: false for the flags that only print (``--help``, ``--hydra-help``, ``--cfg``, ``--info``, ``-sc``,
    ``--version``): nothing is run or written, so the log directory is not checked.
    """

    overrides: tuple[str, ...]
    config_name: str
    config_dirs: tuple[Path, ...]
    runs_job: bool
    check_skipped: str | None = None


class _ArgvError(Exception):
    pass


def parse_command_line(args: Sequence[str], config_name: str = "train") -> CommandLine | None:
    """``args`` split as ``@hydra.main`` splits them; ``None`` when Hydra's parser refuses them (Hydra says why)."""
    import argparse
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise _ArgvError

    parser.error = refuse  # type: ignore[method-assign]  # no usage printed, no exit: Hydra does that itself
    parser.exit = refuse  # type: ignore[method-assign]  # --version
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # --version prints before it exits
            ns: argparse.Namespace = parser.parse_args(list(args))
    except _ArgvError:
        return None
    name = (ns.config_name or config_name).removesuffix(".yaml")
    dirs: list[Path] = []
    skipped = None
    if ns.config_dir:
        dirs.append(Path(ns.config_dir).resolve())
    if ns.config_path:
        if ns.config_path.startswith("pkg://"):
            skipped = f"-cp {ns.config_path}: the configs are in a package, not checked before Hydra"
        config_path = Path(ns.config_path)
        # Hydra resolves a relative -cp against the directory of the file that declares @hydra.main (this package)
        dirs.append(config_path if config_path.is_absolute() else Path(__file__).resolve().parent / config_path)
    else:
        dirs.append(CONFIG_DIR)
    for extra in _searchpath(ns.overrides):  # hydra.searchpath=[file://my/configs]: their groups' options count too
        if extra.startswith("pkg://"):
            skipped = skipped or f"hydra.searchpath has {extra}: configs in a package are not checked before Hydra"
        else:
            dirs.append(Path(extra.removeprefix("file://")).resolve())
    if ns.shell_completion:
        skipped = "-sc: the arguments are shell-completion commands"
    elif ns.experimental_rerun is not None:
        skipped = "--experimental-rerun: the job's own overrides are used"
    elif not any((d / f"{name}.yaml").is_file() for d in dirs) and not skipped:
        skipped = f"config {name!r} is not a file of {', '.join(map(str, dirs))}: Hydra looks for it"
    prints_only = ns.help or ns.hydra_help or ns.cfg is not None or ns.info is not None or ns.shell_completion
    return CommandLine(tuple(ns.overrides), name, tuple(dirs), runs_job=not prints_only, check_skipped=skipped)


def _searchpath(overrides: Sequence[str]) -> list[str]:
    """The entries of a ``hydra.searchpath=[...]`` override (``file://dir``, ``pkg://package``, or a plain dir)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    lines = [o for o in overrides if o.lstrip("+").startswith("hydra.searchpath=")]
    if not lines:
        return []
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except OverrideParseException:
        return []  # Hydra says what is wrong with it
    entries: list[str] = []
    for override in parsed:
        value = _plain(override.value())
        entries += [str(v) for v in (value if isinstance(value, list) else [value])]
    return entries


def _plain(value: Any) -> Any:
    """A parsed override element as Python data (quoted strings as str, lists and dicts element by element)."""
    from hydra.core.override_parser.types import QuotedString

    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _option_text(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def group_choices(override: Any, options: Sequence[str]) -> tuple[list[list[str]], str | None]:
    """The option lists a group override selects, one per job (a plain value or list: one), and a problem or ``None``.

    Every grammar of Hydra's overrides: ``a``, ``'a'``, ``[a,b]``, ``a,b``, ``choice(a,[b,c])``, ``glob(x*,
    exclude=[y])`` (expanded against ``options``), ``range(...)``, ``sort(...)``, ``shuffle(...)``, ``tag(t, ...)``.
    ``interval(...)`` selects no option and is a problem.
    """
    from hydra.core.override_parser.types import ChoiceSweep, Glob, IntervalSweep, RangeSweep

    value = override._value
    key = override.get_key_element()
    if isinstance(value, Glob):
        matched = value.filter(list(options))
        if not matched:
            glob = override.input_line.split("=", 1)[1]
            return [], f"{key}={glob}: matches no option of {override.key_or_group}. Valid: {', '.join(options)}"
        return [[m] for m in matched], None
    if isinstance(value, IntervalSweep):
        return [], f"{override.input_line}: interval() sweeps a number; {override.key_or_group} takes option names"
    if isinstance(value, RangeSweep):
        items: list[Any] = list(value.range())
    elif isinstance(value, ChoiceSweep):
        items = [_plain(v) for v in value.list]
    else:
        items = [_plain(value)]
    return [[_option_text(n) for n in (item if isinstance(item, list) else [item])] for item in items], None


OVERRIDE_GRAMMAR = "https://hydra.cc/docs/advanced/override_grammar/extended"


def check_command_line(args: Sequence[str], config_name: str = "train") -> CommandLine | None:
    """Raise :class:`ConfigError` for an unknown group option or an unknown top-level setting in ``args``.

    ``args`` is the whole command line: Hydra's flags and their arguments are told apart with Hydra's own parser,
    and only the overrides are checked, against the config ``-cn``/``-cp``/``-cd`` select. Returns the parsed
    command line (``None`` when Hydra's parser refuses it: Hydra then says why).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    line = parse_command_line(args, config_name)
    if line is None or line.check_skipped or not line.overrides:
        return line
    groups = config_groups(line.config_dirs)
    known = {g.split("/")[0] for g in groups} | _top_level_keys(line.config_name, line.config_dirs) | {"hydra"}
    parser = OverridesParser.create()
    problems = []
    for text in line.overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except OverrideParseException as err:
            why = (str(err).splitlines()[1:2] or [""])[0].strip().rstrip(":")
            problems.append(f"{text}: {why or 'not valid override syntax'} (the grammar: {OVERRIDE_GRAMMAR})")
            continue
        key = override.key_or_group
        if override.is_delete() or key.startswith("hydra"):
            continue
        if key in groups and override.value_type is not None:
            selections, problem = group_choices(override, groups[key])
            if problem:
                problems.append(problem)
            unknown = dict.fromkeys(n for names in selections for n in names if n not in groups[key] and n != "null")
            problems += [_unknown(f"{key}={n}", f"is not an option of {key}", n, groups[key]) for n in unknown]
            continue
        top = key.split(".")[0].split("/")[0]
        if top not in known:
            if override.is_add() or override.is_force_add():  # +key=...: a new key, but nothing would read it
                problems.append(
                    _unknown(
                        f"{override.input_line.split('=', 1)[0]}=...",
                        f"'{top}' is not a setting, nothing would read it",
                        top,
                        sorted(known),
                    )
                )
            else:
                problems.append(_unknown(f"{key}=...", f"'{top}' is not a setting", top, sorted(known)))
    if problems:
        raise ConfigError("invalid command line, nothing was run:\n  " + "\n  ".join(problems))
    return line


def _unknown(what: str, why: str, name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else "."
    return f"{what}: {why}{hint} Valid: {', '.join(valid)}"


#: a run needs at least this much free disk space where its logs go (checkpoints, logs, figures)
MIN_FREE_MB = 200


def check_log_dir(args: Sequence[str]) -> Path:
    """Raise :class:`ConfigError` when the run's log directory cannot be written or its disk is (nearly) full.

    The directory is ``paths.log_dir`` from the command line, else ``$TRAINLAB_ROOT/logs`` or ``./logs``. A probe
    file is written and removed in it, or in its nearest existing parent when it does not exist yet (Hydra creates
    it when the run starts), so that a read-only or full disk is found before a run starts instead of at its first
    checkpoint, and a refused command leaves nothing behind.
    """
    import os
    import shutil
    import tempfile

    line = parse_command_line(args)
    log_dir = None
    for arg in line.overrides if line else args:  # the overrides only, not the arguments of Hydra's flags
        if arg.startswith("paths.log_dir="):
            log_dir = arg.split("=", 1)[1]
        elif arg.startswith("paths.root_dir=") and log_dir is None:
            log_dir = str(Path(arg.split("=", 1)[1]) / "logs")
    path = Path(log_dir or Path(os.environ.get("TRAINLAB_ROOT", ".")) / "logs")
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, f"{existing} is a file")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"cannot write run outputs to {path} ({err.strerror or err}): nothing was run. Choose a writable "
            "directory with paths.log_dir=<dir> or TRAINLAB_ROOT=<dir>"
        ) from None
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise ConfigError(
            f"only {free_mb:.0f} MB free on the disk of {path} (a run needs {MIN_FREE_MB} MB for checkpoints and "
            "logs): nothing was run. Free some space or set paths.log_dir=<dir on another disk>"
        )
    return path


def _list_groups(config_name: str) -> set[str]:
    """The groups the config's defaults select as a list (``augment: []``): their options' settings sit side by side
    under the group, so a setting of an option not in the list is explained by adding that option."""
    path = CONFIG_DIR / f"{config_name}.yaml"
    data = OmegaConf.load(path) if path.is_file() else OmegaConf.create()
    defaults = data.get("defaults") or [] if isinstance(data, DictConfig) else []
    return {
        str(k)
        for entry in defaults
        if isinstance(entry, DictConfig)
        for k, v in entry.items()
        if isinstance(v, ListConfig)
    }


def _switched_off_by(key: str, overrides: Sequence[str]) -> str:
    """`` by ensemble=snapshot (its config says: "Early stopping is off: ..."); leave this setting out`` when an option
    selected in ``overrides`` sets ``key`` to null (found in its config file), else a plain advice."""
    import re

    groups = config_groups()
    for text in overrides:
        name, _, option = text.partition("=")
        name = name.lstrip("+~")
        if name not in groups or option not in groups[name]:
            continue
        path = CONFIG_DIR / name / f"{option}.yaml"
        source = path.read_text()
        data = OmegaConf.create(source) if source.strip() else OmegaConf.create()
        package_global = "@package _global_" in source.split("\n", 1)[0]
        relative = key if package_global else key.removeprefix(f"{name}.")
        if not package_global and not key.startswith(f"{name}."):
            continue
        parent, _, last = relative.rpartition(".")
        node = OmegaConf.select(data, parent) if parent else data
        if not isinstance(node, DictConfig) or last not in node or node[last] is not None:
            continue
        words = key.rsplit(".", 1)[-1].replace("_", " ")
        comments = " ".join(line.lstrip("# ").strip() for line in source.splitlines() if line.startswith("#"))
        why = next(
            (s.strip() for s in re.split(r"(?<=\.)\s+", comments) if words.lower() in s.lower()),
            "",
        )
        said = f' ({path.relative_to(CONFIG_DIR.parent)}: "{why}")' if why else ""
        return f" by {name}={option}{said}: leave this setting out, or choose another {name}"
    return " (it is null in this config): leave this setting out"


def explain_override_error(args: Sequence[str], config_name: str = "train") -> str | None:
    """Why Hydra could not apply a ``key.sub=value`` override of ``args`` (a typo in a nested key, or a key of an
    option that is not selected), with the settings that do exist there and a suggestion; ``None`` when the
    command line composes. Called after Hydra has failed, so it costs nothing on a good command line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob, IntervalSweep
    from hydra.errors import ConfigCompositionException, OverrideParseException

    command_line = parse_command_line(args, config_name)
    if command_line is None or command_line.check_skipped or command_line.config_dirs != (CONFIG_DIR,):
        return None  # Hydra's parser refused it, or other configs: Hydra's own message stands
    config_name = command_line.config_name
    groups = config_groups()
    plain = []
    try:
        overrides = OverridesParser.create().parse_overrides(list(command_line.overrides))
    except OverrideParseException:
        return None
    for override in overrides:
        if override.key_or_group.startswith("hydra"):
            continue
        if isinstance(override._value, Glob):  # the first option it matches (a sweep composes like its first job)
            matched = override._value.filter(groups.get(override.key_or_group, []))
            plain += [f"{override.get_key_element()}={matched[0]}"] if matched else []
        elif isinstance(override._value, IntervalSweep):
            plain.append(f"{override.get_key_element()}={override._value.start}")
        elif override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            plain.append(f"{override.get_key_element()}={first}")
        else:
            plain.append(override.input_line)

    def composes(overrides: list[str]) -> DictConfig | Exception:
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
                return compose(config_name, overrides=overrides)
        except ConfigCompositionException as err:
            return err
        finally:
            GlobalHydra.instance().clear()

    if not isinstance(composes(plain), Exception):
        return None
    for i, line in enumerate(plain):
        key = line.split("=", 1)[0]
        if "." not in key or key.startswith(("+", "~")):
            continue
        rest = composes(plain[:i] + plain[i + 1 :])
        if isinstance(rest, Exception) or OmegaConf.select(rest, key, default="__missing__") != "__missing__":
            continue
        parts = key.split(".")
        depth = 0  # parts[:depth] exists in the config, parts[depth] does not
        while depth < len(parts) - 1 and isinstance(
            OmegaConf.select(rest, ".".join(parts[: depth + 1]), default=None), DictConfig
        ):
            depth += 1
        parent, missing = ".".join(parts[:depth]), parts[depth]
        group = ".".join(parts[: depth + 1])
        if group in groups and depth + 1 < len(parts) and parts[depth + 1] in groups[group]:
            option = parts[depth + 1]
            return (
                f"{line}: the settings of {group} option '{option}' exist only when it is selected: "
                f"add {group}=[{option}] (or {group}={option})"
            )
        if parent in groups and missing in groups[parent] and parent in _list_groups(config_name):
            return (
                f"{line}: the settings of {parent} option '{missing}' exist only when it is selected: "
                f"add it to the list, e.g. {parent}=[...,{missing}]"
            )
        node = OmegaConf.select(rest, parent) if parent else rest
        if missing in node and node[missing] is None:  # the key is there, switched off: not a typo
            off = ".".join(parts[: depth + 1])
            return f"{line}: {off} is switched off{_switched_off_by(off, overrides=plain[:i] + plain[i + 1 :])}"
        keys = sorted(str(k) for k in node.keys() if not str(k).startswith("_"))
        close = difflib.get_close_matches(missing, keys, n=1, cutoff=0.6)
        where = parent or "the config"
        message = f"{line}: '{missing}' is not a setting of {where}"
        message += f"; did you mean '{close[0]}'?" if close else "."
        message += f" Settings of {where}: {', '.join(keys) or '(none)'}. To add a new key instead: +{line}"
        return message
    return None
