"""Bad input gets a clear answer before anything runs, from the settings' own declarations.

Two checks, both before training starts and before torch is imported:

* :func:`check_command_line` (run by ``trainlab-train`` / ``trainlab-eval`` before Hydra): an unknown option of a
  config group (``activation=relu6``) or an unknown top-level setting (``optimiser.lr=0.1``) is answered with the
  valid choices and, when one is close, a suggestion. Exit code 2, nothing created.
* :func:`validate` (run on the composed config): every setting is checked against its declaration, which lives once,
  in the signature of the class its ``_target_`` names (:mod:`trainlab.settings`, read from the source with
  :mod:`ast`); the same declaration checks the arguments when the class is built. Every violation is reported at
  once, naming the key, the value and what is allowed, then the rules over two settings
  (:mod:`trainlab.combinations`). Exit code 2, before any data is loaded or any checkpoint written.

A user's class gets the same early checks by declaring its settings the same way. ``docs/bad_inputs.md`` lists
every bad input the tests try and the message it gets.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab import CONFIG_DIR
from trainlab.errors import ConfigError
from trainlab.settings import Declared, declared, library_declared, module_settings, parameters

#: the module whose ``SETTINGS`` declares the run's own settings (``seed``, ``train``, ``extras.*``...)
RUN_SETTINGS = "trainlab.console"


def declared_settings(cfg: DictConfig) -> dict[str, Declared]:
    """Every setting of ``cfg`` that has a declaration (:mod:`trainlab.settings`), by its dotted key: the parameters
    of each ``_target_``'s class as its signature declares them, and the run's own settings. Nothing is imported."""
    found = dict(module_settings(RUN_SETTINGS))
    for path, target in _targets(cfg):
        found.update({f"{path}.{name}": d for name, d in declared(target).items()})
    return found


def target_problems(cfg: DictConfig) -> list[str]:
    """Every ``_target_`` whose module is not on the Python path (found without importing it): a user's class whose
    code is not on ``PYTHONPATH`` is named now, not with a traceback after the run directory was made."""
    import importlib.util

    problems = []
    for path, target in _targets(cfg):
        module = target.rpartition(".")[0]
        top = module.split(".")[0]
        try:
            found = bool(module) and importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            problems.append(
                f"{path}._target_={target}: no module named {top!r} on the Python path; put the directory that holds "
                f"it on PYTHONPATH (PYTHONPATH=<that directory> {_script()} ...)"
            )
    return problems


#: the keys of a ``_target_`` node that Hydra reads itself
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_recursive_", "_convert_", "_args_"})
#: the data config's declarations, for the other configs to read; a data module need not take them
DATA_DECLARATIONS = ("num_classes", "input_shape")


def unknown_key_problems(cfg: DictConfig) -> list[str]:
    """Every key of a ``_target_`` node that its class does not take (``+data.foo=1``), read from the class's
    source, for the classes that declare their settings (:mod:`trainlab.settings`): a library's class is checked
    later, against the library itself (:mod:`trainlab.library_settings`); any other class, when it is built."""
    problems = []
    for path, target in _targets(cfg):
        if not set(declared(target)) - set(library_declared(target)):
            continue
        params = parameters(target)
        node = OmegaConf.select(cfg, path, default=None, throw_on_resolution_failure=False)
        if params is None or not isinstance(node, DictConfig):
            continue
        for key in (str(k) for k in node.keys()):
            if key in HYDRA_KEYS or key in params or (path == "data" and key in DATA_DECLARATIONS):
                continue
            value = OmegaConf.select(node, key, default=None, throw_on_resolution_failure=False)
            close = difflib.get_close_matches(key, params, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                f"{path}.{key}={value}: {target} has no setting '{key}'{hint}; its settings are {', '.join(params)}"
            )
    return problems


def _script() -> str:
    import sys

    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name.startswith("trainlab") else "trainlab-train"


def _targets(node: Any, path: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """``(dotted path, class path)`` of every node of the config that names a ``_target_`` (Hydra's own keys aside)."""
    if not isinstance(node, DictConfig) or depth > 6:
        return []
    found = []
    target = OmegaConf.select(node, "_target_", default=None, throw_on_resolution_failure=False) if path else None
    if isinstance(target, str):
        found.append((path, target))
    for key in node.keys():
        if path == "" and key == "hydra":
            continue
        try:
            child = node._get_node(key)  # the node as it is: an interpolation is not resolved
        except Exception:  # noqa: BLE001 - a key that cannot be read is reported elsewhere
            continue
        if isinstance(child, DictConfig) and not child._is_interpolation():
            found += _targets(child, f"{path}.{key}" if path else str(key), depth + 1)
    return found


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
    """Raise :class:`ConfigError` listing every setting of ``cfg`` out of its declared range
    (:func:`declared_settings`), and every pair of settings that breaks a rule of
    :data:`trainlab.combinations.COMBINATIONS` (the one table of rules that depend on two settings)."""
    from trainlab.combinations import combination_problems

    problems = target_problems(cfg) + unknown_key_problems(cfg)
    bad = set()
    settings = declared_settings(cfg)
    for key, setting in settings.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if value is None or isinstance(value, DictConfig | ListConfig):
            continue
        problem = setting.problem(key, value)
        if problem and _copied_from(cfg, key) not in settings:  # a copy is reported at the setting it copies
            problems.append(problem)
            bad.add(key)
    shape = OmegaConf.select(cfg, "data.input_shape", default=None, throw_on_resolution_failure=False)
    if shape is not None and not _is_shape(shape):
        value = OmegaConf.to_container(shape) if isinstance(shape, ListConfig) else shape
        problems.append(
            f"data.input_shape={value!r}: the shape of one sample must be [channels, height, width] (images) or "
            "[features] (vectors), positive integers"
        )
        bad.add("data.input_shape")
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
    if command_line is None or command_line.check_skipped or command_line.config_dirs[0] != CONFIG_DIR:
        return None  # Hydra's parser refused it, or other configs (-cd, -cp): Hydra's own message stands
    config_name = command_line.config_name
    groups = config_groups(command_line.config_dirs)  # with those of hydra.searchpath=[file://...]
    plain = []
    try:
        overrides = OverridesParser.create().parse_overrides(list(command_line.overrides))
    except OverrideParseException:
        return None
    for override in overrides:
        if override.key_or_group == "hydra.searchpath":  # the user's configs compose with ours
            plain.append(override.input_line)
            continue
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
