"""Settings that are fine alone but not together: one line, exit 2, before anything runs (trainlab.combinations).

Every rule of :data:`trainlab.combinations.COMBINATIONS` is tried through the console script with the first command
line of its row (a new rule is tested by adding its row); every example of every row is checked in-process, and its
message fragment is in :data:`CASES`. Also here: vector (tabular) data with the defaults, and the messages that must
describe the run's own settings (issue 12, defects 2, 6 and 7).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from trainlab.combinations import COMBINATIONS, VECTORS, model_source
from trainlab.validate import ConfigError, validate

from .conftest import BIN, read_metrics

#: every bad input of this file: (what the user types, a fragment of the one-line answer); for docs/bad_inputs.md
CASES = [
    (
        "regularizer=[stochastic_depth]",
        "regularizer=stochastic_depth does not apply to model=mlp; it works with model=resnet",
    ),
    (
        "model=resnet regularizer=[fractional_pool]",
        "regularizer=fractional_pool does not apply to model=resnet; it works with model=cnn",
    ),
    (
        "model=resnet regularizer=[dropconnect]",
        "regularizer=dropconnect does not apply to model=resnet; it works with model=cnn or model=mlp",
    ),
    (
        f"{VECTORS} model=cnn",
        (
            "model=cnn needs images [C, H, W], but the data are vectors (data.input_shape=[2]); for vectors use "
            "model=mlp"
        ),
    ),
    (
        f"{VECTORS} model=resnet",
        "model=resnet needs images [C, H, W], but the data are vectors (data.input_shape=[2])",
    ),
    (
        "model=cnn preprocess=pca",
        "preprocess=pca turns images into vectors of 32, which model=cnn cannot take; it works with model=mlp",
    ),
    (
        "model=resnet preprocess=pca_whiten",
        "preprocess=pca_whiten turns images into vectors of 64, which model=resnet cannot take",
    ),
    (
        f"{VECTORS} augment=[hflip]",
        (
            "augment=[hflip] needs images [C, H, W] (every augment option flips, crops, rotates, recolours or cuts "
            "images), but the data are vectors (data.input_shape=[2])"
        ),
    ),
    (
        f"{VECTORS} augment=[cutout]",
        "augment=[cutout] needs images [C, H, W]",
    ),
    (
        f"{VECTORS} preprocess=none augment=[crop]",
        "augment=[crop] needs images [C, H, W]",
    ),
    (
        "augment=[cutout] preprocess=pca",
        "augment=[cutout] needs images after preprocessing; preprocess=pca gives vectors of 32",
    ),
    (
        "augment=[color_jitter]",
        (
            "augment=color_jitter needs colour images (3 channels); the data has 1 channel (data.input_shape=[1, 8, "
            "8]): it works with data=cifar10 or data=cifar100"
        ),
    ),
    (
        "regularizer=[cutmix] preprocess=pca",
        (
            "regularizer=[cutmix] needs images [C, H, W], but preprocess=pca gives vectors of 32; "
            "regularizer=[mixup] works on vectors"
        ),
    ),
    (
        f"{VECTORS} regularizer=[cutmix]",
        "regularizer=[cutmix] needs images [C, H, W], but the data are vectors (data.input_shape=[2])",
    ),
    (
        f"{VECTORS} channels_last=true",
        (
            "channels_last=true reorders the memory of images [C, H, W], but the data are vectors "
            "(data.input_shape=[2]); leave channels_last=false"
        ),
    ),
    (
        "model=cnn model.channels=[8,8,8,8]",
        (
            "model.channels=[8, 8, 8, 8] pools the 8x8 images of data.input_shape=[1, 8, 8] down to nothing "
            "(model.pool_size=2 divides each side per block): use at most 3 blocks"
        ),
    ),
    (
        "ensemble=snapshot trainer.max_epochs=3",
        (
            "ensemble.cycles=5 needs trainer.max_epochs >= 5 (each cycle is at least one epoch), got "
            "trainer.max_epochs=3"
        ),
    ),
    (
        "ensemble=snapshot ensemble.cycles=4 debug=fdr",
        (
            "ensemble.cycles=4 needs trainer.max_epochs >= 4 (each cycle is at least one epoch), got "
            "trainer.max_epochs=1"
        ),
    ),
    (
        "ensemble=snapshot trainer.max_epochs=5 ensemble.keep=6",
        "ensemble.keep=6 must be <= ensemble.cycles=5 (one snapshot is saved per cycle",
    ),
    (
        f"{VECTORS} preprocess=pca",
        "preprocess.components=32 must be <= 2, the values of one sample (data.input_shape=[2])",
    ),
    (
        "preprocess=pca preprocess.components=65",
        "preprocess.components=65 must be <= 64, the values of one sample (data.input_shape=[1, 8, 8])",
    ),
    (
        "recipe=lr_find debug=fdr",
        "recipe=lr_find runs recipe.num_training=100 steps, but trainer.fast_dev_run=True (debug=fdr) runs one",
    ),
    (
        "trainer.min_epochs=5 trainer.max_epochs=2",
        "trainer.min_epochs=5 must be <= trainer.max_epochs=2 (the run ends after 2 epochs)",
    ),
    (
        "+trainer.min_steps=50 +trainer.max_steps=10",
        "trainer.min_steps=50 must be <= trainer.max_steps=10 (the run ends after 10 steps)",
    ),
    (
        "data.val_fraction=0.5 data.test_fraction=0.5",
        (
            "data.val_fraction=0.5 and data.test_fraction=0.5 hold out 1 of the data, nothing is left to train on: "
            "together they must be < 1"
        ),
    ),
    (
        "augment=[crop] augment.crop.padding=8",
        "augment.crop.padding=8: pixels of padding before the crop must be an integer in [0, 7]",
    ),
    (
        "augment=[cutout] augment.cutout.size=9",
        "augment.cutout.size=9: side of the cut-out square must be an integer in [1, 8]",
    ),
    (
        "data=fashion_mnist augment=[cutout] augment.cutout.size=100",
        "augment.cutout.size=100: side of the cut-out square must be an integer in [1, 28]",
    ),
    (
        "recipe=lr_find recipe.max_lr=1e-7",
        "recipe.max_lr=1e-07: highest learning rate of the range test must be a number > 1e-06",
    ),
    (
        "data.num_workers=2",
        (
            "data.num_workers=2 has no effect with data.loader=memory (batches are sliced from memory, no worker "
            "processes)"
        ),
    ),
]
FRAGMENTS = dict(CASES)
#: (rule, its first example): the one that goes through the console script
FIRST = [pytest.param(rule, rule.examples[0], id=rule.examples[0]) for rule in COMBINATIONS]
#: (rule, example) for every example of every rule
EVERY = [pytest.param(rule, example, id=example) for rule in COMBINATIONS for example in rule.examples]


def trainlab_train(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(BIN / "trainlab-train"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def problem_lines(output: str) -> list[str]:
    """One line per problem: the one line of a single problem (``trainlab-train: <problem>; nothing was run``), or
    the indented lines under the heading when there are several."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "nothing was run" in line)
    if not lines[start].rstrip().endswith(":"):
        return [lines[start].split(": ", 1)[1].removesuffix("; nothing was run")]
    return [line.strip() for line in lines[start + 1 :] if line.startswith("  ")]


def names_both(rule, line: str) -> bool:
    """The line names the rule's first setting and at least one other, each with its value (``key=...``)."""
    first, *others = rule.settings
    return f"{first}=" in line and any(f"{other}=" in line for other in others)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_every_rule_has_an_example_and_every_example_a_documented_message():
    assert COMBINATIONS and all(rule.examples for rule in COMBINATIONS)
    examples = [example for rule in COMBINATIONS for example in rule.examples]
    assert sorted(examples) == sorted(FRAGMENTS), "CASES and the examples of COMBINATIONS differ"


@pytest.mark.slow
@pytest.mark.parametrize(("rule", "example"), FIRST)
def test_a_combination_is_refused_through_the_console_script(tmp_path, rule, example):
    proc = trainlab_train(example.split(), cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    (line,) = problem_lines(output)  # one message
    assert FRAGMENTS[example] in line
    assert names_both(rule, line), line
    assert files_under(tmp_path / "logs") == []  # nothing was written


@pytest.mark.parametrize(("rule", "example"), EVERY)
def test_every_example_of_a_rule_gets_its_one_line(make_cfg, rule, example):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*example.split()))
    (line,) = str(err.value).splitlines()[1:]
    assert FRAGMENTS[example] in line and names_both(rule, line), line


@pytest.mark.slow
def test_an_existing_run_directory_is_left_untouched_by_a_refused_combination(tmp_path):
    run_dir = tmp_path / "logs" / "train" / "runs" / "earlier"  # a directory the user chose, holding their files
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "notes.txt").write_text("my notes\n")
    (run_dir / "checkpoints" / "keep.txt").write_text("keep\n")
    before = {p: p.read_bytes() for p in files_under(tmp_path / "logs")}
    # overwrite=true: past the check that refuses a used run directory, so that the combination rule is what refuses
    args = ["ensemble=snapshot", "trainer.max_epochs=2", f"hydra.run.dir={run_dir}", "overwrite=true"]
    proc = trainlab_train(args, cwd=tmp_path)
    assert proc.returncode == 2 and "ensemble.cycles=5 needs trainer.max_epochs >= 5" in proc.stderr + proc.stdout
    assert {p: p.read_bytes() for p in files_under(tmp_path / "logs")} == before


def test_combinations_are_checked_together_with_single_settings(make_cfg):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("optimizer.lr=-1", "regularizer=[stochastic_depth]", "augment=[color_jitter]"))
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 3 and lines[0].strip().startswith("optimizer.lr=-1")


def test_a_setting_already_invalid_alone_is_not_reported_again_in_a_combination(make_cfg):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("ensemble=snapshot", "ensemble.cycles=0", "trainer.max_epochs=3"))
    assert len(str(err.value).splitlines()) == 2 and "ensemble.cycles=0: snapshot cycles" in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        "",
        "model=cnn",
        "model=resnet regularizer=[stochastic_depth]",
        "model=cnn regularizer=[fractional_pool] model.channels=[8,8,8,8]",
        "model=cnn preprocess=zca_whiten augment=[cutout]",
        "preprocess=pca regularizer=[mixup]",
        "data=cifar10 augment=[color_jitter,hflip,crop] regularizer=[cutmix]",
        "ensemble=snapshot trainer.max_epochs=6",
        "ensemble=snapshot trainer.max_epochs=5 ensemble.keep=5",
        "data.loader=dataloader data.num_workers=2",
        f"{VECTORS}",
        f"{VECTORS} preprocess=pca preprocess.components=2 regularizer=[mixup,dropout]",
    ],
)
def test_combinations_that_work_pass(make_cfg, overrides):
    validate(make_cfg(*overrides.split()))


def test_what_a_model_accepts_is_read_from_its_source():
    import inspect

    import hydra

    from trainlab.combinations import model_options

    for target in model_options():
        source, cls = model_source(target), hydra.utils.get_class(target)
        assert source.params == frozenset(list(inspect.signature(cls).parameters)), target
        assert source.needs_images == bool(getattr(cls, "needs_images", False)), target
    unknown = model_source("no_such_package.models.Net")
    assert unknown.params is None and unknown.needs_images is False  # unknown: the build's own check decides


# ---- vector (tabular) data: the defaults work, per feature ----
@pytest.mark.slow
def test_the_defaults_train_on_vector_data_through_the_console_script(tmp_path):
    proc = trainlab_train([*VECTORS.split(), "trainer.max_epochs=1"], cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] == 1 and "test/acc" in metrics


def test_the_build_refuses_an_image_model_on_vectors_saying_the_data_are_vectors(make_cfg):
    """The second line (a model built from Python): the data are vectors, not 'preprocess turns images into vectors'."""
    from trainlab import build

    for preprocess in ("normalize", "none"):
        cfg = make_cfg(*VECTORS.split(), "model=cnn", f"preprocess={preprocess}", subdir=preprocess)
        with pytest.raises(ValueError, match=r"model=cnn needs images \[C, H, W\], but the data are vectors") as err:
            build.build_module(cfg)
        assert "turns images into vectors" not in str(err.value)


# ---- defect 7: the initial-loss advice describes the run's own settings ----
def initial_loss_message(tmp_path: Path, *overrides: str) -> str:
    proc = trainlab_train(["recipe=initial_loss", *overrides], cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-3000:]
    (path,) = (tmp_path / "logs").rglob("initial_loss.json")
    import json

    return json.loads(path.read_text())["message"]


@pytest.mark.slow
def test_initial_loss_advice_does_not_suggest_the_init_already_in_use(tmp_path):
    message = initial_loss_message(tmp_path, "init=kaiming", "init.gain=30")
    assert "too high, although init=kaiming (init.gain=30) is already the usual init for activation=relu" in message
    assert "try init=kaiming" not in message and "a smaller init.gain" in message


@pytest.mark.parametrize(
    ("activation", "usual"), [("relu", "kaiming"), ("tanh", "xavier")], ids=["relu->kaiming", "tanh->xavier"]
)
def test_initial_loss_advice_suggests_the_usual_init_of_the_activation(make_cfg, activation, usual):
    from trainlab import build
    from trainlab.recipe import initial_loss

    cfg = make_cfg("init=small_random", "init.std=1.0", f"activation={activation}")
    module, datamodule = build.build_module(cfg), build.build_datamodule(cfg)
    module.preprocess.fit(datamodule.train_images())
    result = initial_loss(module, datamodule)
    assert not result["ok"]
    assert "too high: the initial weights are too large with init=small_random (init.std=1.0) and " in result["message"]
    assert f"try init={usual}, the usual init for activation={activation}" in result["message"]
