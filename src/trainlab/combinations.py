"""Settings that are fine alone but not together: the one table of rules that depend on two settings.

:func:`trainlab.validate.validate` checks :data:`COMBINATIONS` together with the single-setting schema, on the
composed config, before torch is imported and before anything is written: a refused combination is one line per
problem, naming both settings, their values and what is allowed (exit code 2). The classes keep their own checks
as a second line for people who build them from Python.

What a model accepts and what a technique is are read from their source, not from hand-kept lists: the class a
``_target_`` names is found on disk and parsed with :mod:`ast`. A model's constructor parameters say which layer
regularizers it can apply and its ``needs_images`` class attribute whether it takes ``[C, H, W]`` images only; a
layer regularizer's ``argument`` class attribute says which constructor argument it needs
(:class:`trainlab.techniques.LayerRegularizer`). Nothing is imported.

Each rule carries the command lines it refuses (``examples``); ``tests/test_combinations.py`` runs every one of
them through ``trainlab-train``, so a new rule is tested by adding its row here.
"""

from __future__ import annotations

import ast
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainlab import CONFIG_DIR
from trainlab.settings import module_file

#: preprocessing methods whose output is a vector (the top principal components), not an image
VECTOR_PREPROCESS = ("pca", "pca_whiten")


@dataclass(frozen=True)
class Combination:
    """A rule over ``settings`` (dotted keys or groups): ``problems(cfg)`` lists what is wrong, one line each.

    ``examples``: command lines (overrides) the rule refuses; each is tried by the tests through the console script.
    """

    name: str
    settings: tuple[str, ...]
    problems: Callable[[DictConfig], list[str]]
    examples: tuple[str, ...]


# ---- what the config says, without torch ----
def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default, throw_on_resolution_failure=False)
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _names(cfg: DictConfig, group: str) -> list[str]:
    """The options selected in a list group (``augment``, ``regularizer``), in config order."""
    node = _get(cfg, group)
    return [str(k) for k in node] if isinstance(node, dict) else []


def data_shape(cfg: DictConfig) -> tuple[int, ...] | None:
    shape = _get(cfg, "data.input_shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
        return None
    return tuple(shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _vectors(cfg: DictConfig) -> str | None:
    """``"the data are vectors (data.input_shape=[2])"`` when the data set's samples are not images, else None."""
    shape = data_shape(cfg)
    if shape is None or len(shape) == 3:
        return None
    return f"the data are vectors (data.input_shape={_shape_text(shape)})"


def _preprocess_method(cfg: DictConfig) -> str:
    return str(_get(cfg, "preprocess.method") or "none") if _get(cfg, "preprocess") else "none"


def _pca_vectors(cfg: DictConfig) -> str | None:
    """``"preprocess=pca gives vectors of 64"`` when preprocessing turns the data set's images into vectors."""
    shape = data_shape(cfg)
    method = _preprocess_method(cfg)
    if shape is None or len(shape) != 3 or method not in VECTOR_PREPROCESS:
        return None
    components = _get(cfg, "preprocess.components") or math.prod(shape)
    return f"preprocess={method} gives vectors of {components}"


@dataclass(frozen=True)
class ModelSource:
    """What the source of a class says: its constructor's parameters (None: unknown, or ``**kwargs``), whether it
    takes images only (``needs_images``), and its other class attributes that are constants (``argument``...)."""

    params: frozenset[str] | None
    needs_images: bool
    attributes: tuple[tuple[str, Any], ...] = ()

    def attribute(self, name: str) -> Any:
        return dict(self.attributes).get(name)


@functools.lru_cache(maxsize=64)
def model_source(target: str) -> ModelSource:
    """Read the class ``target`` (``package.module.Class``) from its source file with :mod:`ast`."""
    unknown = ModelSource(params=None, needs_images=False)
    module, _, name = target.rpartition(".")
    path = module_file(module) if module else None
    if path is None:
        return unknown
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, ValueError):
        return unknown
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    node = classes.get(name)
    if node is None:
        return unknown
    params: frozenset[str] | None = None
    attributes: dict[str, Any] = {}
    for item in node.body:
        targets = (
            item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(item, ast.AnnAssign) else []
        )
        for t in targets:
            if isinstance(t, ast.Name) and isinstance(getattr(item, "value", None), ast.Constant):
                attributes[t.id] = item.value.value
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            args = item.args
            if args.kwarg is None:
                params = frozenset(a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs][1:])
    needs_images = attributes.get("needs_images") is True
    return ModelSource(params=params, needs_images=needs_images, attributes=tuple(attributes.items()))


@functools.lru_cache(maxsize=1)
def model_options() -> dict[str, str]:
    """``{network class path: model option name}`` from configs/model/*.yaml."""
    options = {}
    for path in sorted((CONFIG_DIR / "model").glob("*.yaml")):
        target = (OmegaConf.load(path) or {}).get("_target_")
        if target:
            options[str(target)] = path.stem
    return options


def _model(cfg: DictConfig) -> tuple[str, ModelSource] | None:
    target = _get(cfg, "model._target_")
    if not isinstance(target, str):
        return None
    return model_options().get(target, target), model_source(target)


def _models_where(test: Callable[[ModelSource], bool]) -> str:
    works = [name for target, name in model_options().items() if test(model_source(target))]
    return "model=" + " or model=".join(works) if works else "(no model)"


@functools.lru_cache(maxsize=1)
def _colour_data() -> list[str]:
    names = []
    for path in sorted((CONFIG_DIR / "data").glob("*.yaml")):
        shape = (OmegaConf.load(path) or {}).get("input_shape")
        if shape is not None and len(shape) == 3 and shape[0] == 3:
            names.append(path.stem)
    return names


# ---- the rules ----
def _layer_regularizer_vs_model(cfg: DictConfig) -> list[str]:
    model = _model(cfg)
    if model is None or model[1].params is None:
        return []
    name, source = model
    problems = []
    for reg in _names(cfg, "regularizer"):
        target = _get(cfg, f"regularizer.{reg}._target_")
        argument = model_source(target).attribute("argument") if isinstance(target, str) else None
        if isinstance(argument, str) and argument not in source.params:  # a layer the model cannot build
            works = _models_where(lambda s, a=argument: s.params is None or a in s.params)
            problems.append(f"regularizer={reg} does not apply to model={name}; it works with {works}")
    return problems


def _model_vs_vector_data(cfg: DictConfig) -> list[str]:
    model, vectors = _model(cfg), _vectors(cfg)
    if model is None or vectors is None or not model[1].needs_images:
        return []
    works = _models_where(lambda s: not s.needs_images)
    return [f"model={model[0]} needs images [C, H, W], but {vectors}; for vectors use {works}"]


def _model_vs_preprocess(cfg: DictConfig) -> list[str]:
    model, pca = _model(cfg), _pca_vectors(cfg)
    if model is None or pca is None or not model[1].needs_images:
        return []
    method, size = pca.split(" gives vectors of ")
    works = _models_where(lambda s: not s.needs_images)
    return [
        f"{method} turns images into vectors of {size}, which model={model[0]} cannot take; it works with "
        f"{works} (preprocess=zca_whiten keeps images)"
    ]


def _augment_vs_vector_data(cfg: DictConfig) -> list[str]:
    vectors = _vectors(cfg)
    augment = _names(cfg, "augment")
    if vectors is None or not augment:
        return []
    return [
        f"augment=[{','.join(augment)}] needs images [C, H, W] (every augment option flips, crops, rotates, recolours "
        f"or cuts images), but {vectors}; drop it: augment=[]"
    ]


def _cutout_vs_preprocess(cfg: DictConfig) -> list[str]:
    pca = _pca_vectors(cfg)
    if pca is None or "cutout" not in _names(cfg, "augment"):
        return []
    return [
        f"augment=[cutout] needs images after preprocessing; {pca}: use preprocess=normalize, zero_center or "
        "zca_whiten (they keep images), or drop cutout"
    ]


def _color_jitter_vs_channels(cfg: DictConfig) -> list[str]:
    shape = data_shape(cfg)
    if shape is None or len(shape) != 3 or shape[0] == 3 or "color_jitter" not in _names(cfg, "augment"):
        return []
    s = "" if shape[0] == 1 else "s"
    colour = " or ".join(f"data={name}" for name in _colour_data()) or "colour data"
    return [
        f"augment=color_jitter needs colour images (3 channels); the data has {shape[0]} channel{s} "
        f"(data.input_shape={_shape_text(shape)}): it works with {colour}"
    ]


def _cutmix_vs_vectors(cfg: DictConfig) -> list[str]:
    if "cutmix" not in _names(cfg, "regularizer"):
        return []
    why = _vectors(cfg) or _pca_vectors(cfg)
    if why is None:
        return []
    return [f"regularizer=[cutmix] needs images [C, H, W], but {why}; regularizer=[mixup] works on vectors"]


def _channels_last_vs_vectors(cfg: DictConfig) -> list[str]:
    vectors = _vectors(cfg)
    if vectors is None or _get(cfg, "channels_last") is not True:
        return []
    return [f"channels_last=true reorders the memory of images [C, H, W], but {vectors}; leave channels_last=false"]


def _cnn_pools_to_nothing(cfg: DictConfig) -> list[str]:
    shape, model = data_shape(cfg), _model(cfg)
    channels, pool, size = _get(cfg, "model.channels"), _get(cfg, "model.pool"), _get(cfg, "model.pool_size")
    if shape is None or len(shape) != 3 or model is None or not model[1].needs_images or _pca_vectors(cfg):
        return []
    if not isinstance(channels, list) or pool == "none" or not isinstance(size, int) or size < 1:
        return []
    if "fractional_pool" in _names(cfg, "regularizer"):
        return []  # fractional pooling never shrinks an axis below 1
    height, width = shape[1], shape[2]
    for _ in channels:
        height, width = height // size, width // size
    if height >= 1 and width >= 1:
        return []
    most = 0
    while min(shape[1:]) // size ** (most + 1) >= 1:
        most += 1
    return [
        f"model.channels={channels} pools the {shape[1]}x{shape[2]} images of data.input_shape={_shape_text(shape)} "
        f"down to nothing (model.pool_size={size} divides each side per block): use at most {most} blocks, "
        "model.pool=none or regularizer=[fractional_pool]"
    ]


def _target_is(cfg: DictConfig, key: str, class_name: str) -> bool:
    """Whether ``cfg.<key>._target_`` names the class ``class_name`` (or a class of that name elsewhere)."""
    target = _get(cfg, f"{key}._target_")
    return isinstance(target, str) and target.rsplit(".", 1)[-1] == class_name


def _snapshot_epochs(cfg: DictConfig) -> list[str]:
    if not _target_is(cfg, "ensemble", "SnapshotEnsemble"):
        return []
    cycles, epochs = _get(cfg, "ensemble.cycles"), _get(cfg, "trainer.max_epochs")
    if not isinstance(cycles, int):
        return []
    if epochs is None or (isinstance(epochs, int) and epochs < 0):
        return [f"ensemble=snapshot needs trainer.max_epochs (its {cycles} cycles are whole epochs), got {epochs}"]
    if isinstance(epochs, int) and epochs < cycles:
        return [
            f"ensemble.cycles={cycles} needs trainer.max_epochs >= {cycles} (each cycle is at least one epoch), got "
            f"trainer.max_epochs={epochs}: lower ensemble.cycles or train longer"
        ]
    return []


def _snapshot_keep(cfg: DictConfig) -> list[str]:
    if not _target_is(cfg, "ensemble", "SnapshotEnsemble"):
        return []
    cycles, keep = _get(cfg, "ensemble.cycles"), _get(cfg, "ensemble.keep")
    if isinstance(cycles, int) and isinstance(keep, int) and keep > cycles:
        return [
            f"ensemble.keep={keep} must be <= ensemble.cycles={cycles} (one snapshot is saved per cycle; "
            "null keeps them all)"
        ]
    return []


def _components_vs_data(cfg: DictConfig) -> list[str]:
    shape, components = data_shape(cfg), _get(cfg, "preprocess.components")
    if shape is None or _preprocess_method(cfg) not in VECTOR_PREPROCESS or not isinstance(components, int):
        return []
    dims = math.prod(shape)
    if components <= dims:
        return []
    return [
        f"preprocess.components={components} must be <= {dims}, the values of one sample "
        f"(data.input_shape={_shape_text(shape)})"
    ]


def _workers_vs_loader(cfg: DictConfig) -> list[str]:
    workers, loader = _get(cfg, "data.num_workers"), _get(cfg, "data.loader", "memory")
    if loader == "memory" and isinstance(workers, int) and workers > 0:
        return [
            f"data.num_workers={workers} has no effect with data.loader=memory (batches are sliced from memory, "
            "no worker processes): add data.loader=dataloader, or leave data.num_workers=0"
        ]
    return []


def _lr_find_vs_fast_dev_run(cfg: DictConfig) -> list[str]:
    fast = _get(cfg, "trainer.fast_dev_run")
    if _target_is(cfg, "recipe", "LrFind") and fast not in (None, False, 0):
        return [
            f"recipe=lr_find runs recipe.num_training={_get(cfg, 'recipe.num_training')} steps, but "
            f"trainer.fast_dev_run={fast} (debug=fdr) runs one and makes Lightning skip the range test: drop debug=fdr "
            "(or use debug=limit)"
        ]
    return []


def _min_vs_max(unit: str) -> Callable[[DictConfig], list[str]]:
    """The rule ``trainer.min_<unit> <= trainer.max_<unit>`` (``unit``: epochs or steps; a negative max: no limit)."""

    def problems(cfg: DictConfig) -> list[str]:
        low, high = _get(cfg, f"trainer.min_{unit}"), _get(cfg, f"trainer.max_{unit}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) or high < 0 or low <= high:
            return []
        return [
            f"trainer.min_{unit}={low} must be <= trainer.max_{unit}={high} (the run ends after {high} {unit}): "
            f"lower trainer.min_{unit} or raise trainer.max_{unit}"
        ]

    return problems


def _held_out_fractions(cfg: DictConfig) -> list[str]:
    val, test = _get(cfg, "data.val_fraction"), _get(cfg, "data.test_fraction")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (val, test)) or val + test < 1:
        return []
    return [
        f"data.val_fraction={val} and data.test_fraction={test} hold out {val + test:g} of the data, nothing is left "
        "to train on: together they must be < 1"
    ]


def _within(cfg: DictConfig, key: str, target_key: str, because: str, **bounds: Any) -> list[str]:
    """The problem of ``key`` against its own declaration (:mod:`trainlab.settings`) with ``bounds`` that depend on
    another setting added: the message names the whole range, as a declared range would."""
    import dataclasses

    from trainlab.settings import Declared, declared

    target = _get(cfg, target_key)
    setting = declared(target).get(key.rsplit(".", 1)[-1]) if isinstance(target, str) else None
    value = _get(cfg, key)
    if setting is None or not isinstance(value, int | float) or isinstance(value, bool):
        return []
    if not setting.accepts(value):
        return []  # out of its own range: reported as such
    wider = Declared(dataclasses.replace(setting.setting, **bounds), setting.kind, setting.choices)
    problem = wider.problem(key, value)
    return [f"{problem} ({because})"] if problem else []


def _image_side(cfg: DictConfig) -> int | None:
    shape = data_shape(cfg)
    return min(shape[1:]) if shape is not None and len(shape) == 3 else None


def _crop_padding_vs_image(cfg: DictConfig) -> list[str]:
    side = _image_side(cfg)
    if "crop" not in _names(cfg, "augment") or side is None:
        return []
    because = f"less than the image side of data.input_shape={_shape_text(data_shape(cfg))}"
    return _within(cfg, "augment.crop.padding", "augment.crop._target_", because, high=side - 1)


def _cutout_vs_image(cfg: DictConfig) -> list[str]:
    side = _image_side(cfg)
    if "cutout" not in _names(cfg, "augment") or side is None:
        return []
    because = f"at most the image side of data.input_shape={_shape_text(data_shape(cfg))}"
    return _within(cfg, "augment.cutout.size", "augment.cutout._target_", because, high=side)


def _lr_range(cfg: DictConfig) -> list[str]:
    low = _get(cfg, "recipe.min_lr")
    if not isinstance(low, int | float) or isinstance(low, bool):
        return []
    return _within(cfg, "recipe.max_lr", "recipe._target_", f"above recipe.min_lr={low:g}", low=low, low_open=True)


VECTORS = "data=synthetic data.input_shape=[2] data.train_size=64 data.val_size=32 data.test_size=32"
#: every rule that depends on two (or more) settings
COMBINATIONS: tuple[Combination, ...] = (
    Combination(
        "a layer regularizer the model has no parameter for",
        ("regularizer", "model"),
        _layer_regularizer_vs_model,
        (
            "regularizer=[stochastic_depth]",
            "model=resnet regularizer=[fractional_pool]",
            "model=resnet regularizer=[dropconnect]",
        ),
    ),
    Combination(
        "an image-only model on vector data",
        ("model", "data.input_shape"),
        _model_vs_vector_data,
        (f"{VECTORS} model=cnn", f"{VECTORS} model=resnet"),
    ),
    Combination(
        "an image-only model after preprocessing into vectors",
        ("model", "preprocess"),
        _model_vs_preprocess,
        ("model=cnn preprocess=pca", "model=resnet preprocess=pca_whiten"),
    ),
    Combination(
        "augmentation of vector data",
        ("augment", "data.input_shape"),
        _augment_vs_vector_data,
        (f"{VECTORS} augment=[hflip]", f"{VECTORS} augment=[cutout]", f"{VECTORS} preprocess=none augment=[crop]"),
    ),
    Combination(
        "cutout after preprocessing into vectors",
        ("augment", "preprocess"),
        _cutout_vs_preprocess,
        ("augment=[cutout] preprocess=pca",),
    ),
    Combination(
        "colour jitter on greyscale images",
        ("augment", "data.input_shape"),
        _color_jitter_vs_channels,
        ("augment=[color_jitter]",),
    ),
    Combination(
        "CutMix on vectors",
        ("regularizer", "data.input_shape", "preprocess"),
        _cutmix_vs_vectors,
        ("regularizer=[cutmix] preprocess=pca", f"{VECTORS} regularizer=[cutmix]"),
    ),
    Combination(
        "channels-last memory format for vectors",
        ("channels_last", "data.input_shape"),
        _channels_last_vs_vectors,
        (f"{VECTORS} channels_last=true",),
    ),
    Combination(
        "more CNN pooling blocks than the image has pixels",
        ("model.channels", "data.input_shape", "model.pool_size", "model.pool", "regularizer", "preprocess"),
        _cnn_pools_to_nothing,
        ("model=cnn model.channels=[8,8,8,8]",),
    ),
    Combination(
        "more snapshot cycles than epochs",
        ("ensemble.cycles", "trainer.max_epochs", "ensemble._target_"),
        _snapshot_epochs,
        ("ensemble=snapshot trainer.max_epochs=3", "ensemble=snapshot ensemble.cycles=4 debug=fdr"),
    ),
    Combination(
        "more snapshots kept than saved",
        ("ensemble.keep", "ensemble.cycles", "ensemble._target_"),
        _snapshot_keep,
        ("ensemble=snapshot trainer.max_epochs=5 ensemble.keep=6",),
    ),
    Combination(
        "more principal components than values per sample",
        ("preprocess.components", "data.input_shape", "preprocess"),
        _components_vs_data,
        (f"{VECTORS} preprocess=pca", "preprocess=pca preprocess.components=65"),
    ),
    Combination(
        "the learning-rate range test in a one-step debug run",
        ("recipe", "trainer.fast_dev_run"),
        _lr_find_vs_fast_dev_run,
        ("recipe=lr_find debug=fdr",),
    ),
    Combination(
        "more epochs at least than at most",
        ("trainer.min_epochs", "trainer.max_epochs"),
        _min_vs_max("epochs"),
        ("trainer.min_epochs=5 trainer.max_epochs=2",),
    ),
    Combination(
        "more steps at least than at most",
        ("trainer.min_steps", "trainer.max_steps"),
        _min_vs_max("steps"),
        ("+trainer.min_steps=50 +trainer.max_steps=10",),
    ),
    Combination(
        "validation and test shares that leave no training data",
        ("data.val_fraction", "data.test_fraction"),
        _held_out_fractions,
        ("data.val_fraction=0.5 data.test_fraction=0.5",),
    ),
    Combination(
        "a crop padding as wide as the image",
        ("augment.crop.padding", "data.input_shape", "augment"),
        _crop_padding_vs_image,
        ("augment=[crop] augment.crop.padding=8",),
    ),
    Combination(
        "a cutout square larger than the image",
        ("augment.cutout.size", "data.input_shape", "augment"),
        _cutout_vs_image,
        ("augment=[cutout] augment.cutout.size=9", "data=fashion_mnist augment=[cutout] augment.cutout.size=100"),
    ),
    Combination(
        "a learning-rate range test that ends below its start",
        ("recipe.max_lr", "recipe.min_lr"),
        _lr_range,
        ("recipe=lr_find recipe.max_lr=1e-7",),
    ),
    Combination(
        "worker processes without a DataLoader",
        ("data.num_workers", "data.loader"),
        _workers_vs_loader,
        ("data.num_workers=2",),
    ),
)


def combination_problems(cfg: DictConfig, skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every broken :data:`COMBINATIONS` rule of ``cfg``, one line each. Rules reading a setting in ``skip`` (already
    reported as invalid on its own) are not checked."""

    def touches(setting: str) -> bool:
        return any(bad == setting or bad.startswith(setting + ".") or setting.startswith(bad + ".") for bad in skip)

    problems: list[str] = []
    for rule in COMBINATIONS:
        if any(touches(setting) for setting in rule.settings):
            continue
        problems += rule.problems(cfg)
    return problems
