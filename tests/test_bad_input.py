"""Bad input gets a clear error before anything runs: exit code 2, the key, the value, what is allowed.

Every case here is also a row of docs/bad_inputs.md (generated from this list: TRAINLAB_WRITE_DOCS=1 pytest
tests/test_bad_input.py rewrites it; a test fails when the file and the messages differ).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from trainlab.data.files import DataFileError
from trainlab.train import train
from trainlab.validate import ConfigError, check_command_line, check_log_dir, explain_override_error, validate

from .conftest import BIN, QUIET, ROOT

#: (command-line input, a fragment the message must contain)
COMMAND_LINE = [
    ("activation=relu6", "activation=relu6: is not an option of activation; did you mean 'relu'?"),
    ("optimiser.lr=0.1", "'optimiser' is not a setting; did you mean 'optimizer'?"),
    ("augment=[hflip,flop]", "augment=flop: is not an option of augment"),
    ("model=transformer", "model=transformer: is not an option of model"),
    ("data=imagenet", "data=imagenet: is not an option of data"),
    ("regularizer=[dropot]", "regularizer=dropot: is not an option of regularizer; did you mean 'dropout'?"),
    ("optimizer=adamm", "optimizer=adamm: is not an option of optimizer; did you mean 'adam'?"),
    ("scheduler=cosin", "did you mean 'cosine'?"),
    ("activation=relu,relu7", "activation=relu7: is not an option of activation"),
    ("traner.max_epochs=3", "'traner' is not a setting; did you mean 'trainer'?"),
    ("init=he", "init=he: is not an option of init"),
    ("augment=crop,[hflip,flip]", "augment=flip: is not an option of augment"),
]
#: (overrides, fragment): keys below a group that Hydra cannot set, explained with what exists there
NESTED = [
    (
        "optimizer.lrr=0.1",
        "'lrr' is not a setting of optimizer; did you mean 'lr'? Settings of optimizer: betas, eps, lr, weight_decay",
    ),
    ("model.widht=64", "'widht' is not a setting of model; did you mean 'width'?"),
    ("trainer.max_epoch=3", "'max_epoch' is not a setting of trainer; did you mean 'max_epochs'?"),
    (
        "regularizer.dropout.p=0.3",
        "the settings of regularizer option 'dropout' exist only when it is selected: add regularizer=[dropout]",
    ),
    ("regularizer=[l2] regularizer.dropout.p=0.3", "add it to the list, e.g. regularizer=[...,dropout]"),
    ("callbacks.early_stoping.patience=3", "did you mean 'early_stopping'?"),
]
#: (overrides, fragment): composed, then validated against the schema
SETTINGS = [
    (
        "regularizer=[dropout] regularizer.dropout.p=1.5",
        "regularizer.dropout.p=1.5: probability of zeroing a unit must be a number in [0, 1)",
    ),
    ("optimizer.lr=-1", "optimizer.lr=-1: learning rate must be a number > 0"),
    ("optimizer.lr=abc", "optimizer.lr='abc': learning rate must be a number > 0"),
    (
        "regularizer=[mixup] regularizer.mixup.alpha=-0.2",
        "regularizer.mixup.alpha=-0.2: mixup's Beta(alpha, alpha) must be a number >= 0",
    ),
    ("data.batch_size=0", "data.batch_size=0: samples per batch must be an integer >= 1"),
    ("data.batch_size=3.5", "data.batch_size=3.5: samples per batch must be an integer >= 1"),
    ("model.depth=0", "model.depth=0: hidden layers of the MLP must be an integer >= 1"),
    ("model.width=0", "model.width=0: units per hidden layer must be an integer >= 1"),
    ("init=small_random init.std=-1", "init.std=-1: standard deviation of the weights must be a number > 0"),
    ("ensemble=independent ensemble.size=0", "ensemble.size=0: members of the ensemble must be an integer >= 2"),
    ("optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1: weight decay must be a number >= 0"),
    ("optimizer=momentum optimizer.momentum=1.5", "optimizer.momentum=1.5: momentum must be a number in [0, 1)"),
    ("trainer.max_epochs=0", "trainer.max_epochs=0: epochs must be an integer >= 1"),
    (
        "regularizer=[label_smoothing] regularizer.label_smoothing.eps=1.0",
        "regularizer.label_smoothing.eps=1.0: label smoothing must be a number in [0, 1)",
    ),
    (
        "regularizer=[dropconnect] regularizer.dropconnect.p=-0.1",
        "regularizer.dropconnect.p=-0.1: probability of zeroing a weight must be a number in [0, 1)",
    ),
    (
        "regularizer=[l2] regularizer.l2.weight=-1e-4",
        "regularizer.l2.weight=-0.0001: L2 penalty weight must be a number >= 0",
    ),
    ("regularizer=[l1] regularizer.l1.weight=-1", "regularizer.l1.weight=-1: L1 penalty weight must be a number >= 0"),
    (
        "augment=[hflip] augment.hflip.p=2",
        "augment.hflip.p=2: probability of a flip must be a number in [0, 1]",
    ),
    (
        "augment=[crop] augment.crop.padding=-1",
        "augment.crop.padding=-1: pixels of padding before the crop must be an integer >= 0",
    ),
    (
        "augment=[rotate] augment.rotate.degrees=360",
        "augment.rotate.degrees=360: largest rotation must be a number in [0, 180]",
    ),
    (
        "activation=leaky_relu activation.negative_slope=-0.1",
        "activation.negative_slope=-0.1: slope for x < 0 must be a number >= 0",
    ),
    ("activation=maxout activation.pieces=1", "activation.pieces=1: maxout's pieces must be an integer >= 2"),
    ("preprocess=pca preprocess.components=0", "preprocess.components=0: PCA components kept must be an integer >= 1"),
    ("data.loader=disk", "data.loader='disk': how batches are made must be one of memory, dataloader"),
    ("trainer.precision=fp8", "trainer.precision='fp8': numeric precision must be one of 32-true"),
    (
        "callbacks.early_stopping.patience=0",
        "callbacks.early_stopping.patience=0: epochs without improvement before stopping must be an integer >= 1",
    ),
    ("seed=-5", "seed=-5: random seed must be an integer in [0, 4294967295]"),
    ("ensemble=ema ensemble.decay=1.5", "ensemble.decay=1.5: EMA decay must be a number in (0, 1)"),
    ("ensemble=snapshot ensemble.cycles=0", "ensemble.cycles=0: snapshot cycles must be an integer >= 1"),
    (
        "model=resnet regularizer=[stochastic_depth] regularizer.stochastic_depth.p_L=0",
        "regularizer.stochastic_depth.p_L=0: survival probability of the last block must be a number in (0, 1]",
    ),
    ("model=cnn model.pool=median", "model.pool='median': the CNN's pooling must be one of max, avg, none"),
    ("init=kaiming init.mode=fan_avg", "init.mode='fan_avg': the fan the init keeps must be one of fan_in, fan_out"),
    (
        "data.val_fraction=1.5",
        "data.val_fraction=1.5: share of digits held out for validation must be a number in (0, 1)",
    ),
    ("optimizer.lr=nan", "optimizer.lr=nan: learning rate must be a number > 0"),
    (
        "data=synthetic data.input_shape=[3,4]",
        "data.input_shape=[3, 4]: the shape of one sample must be [channels, height, width] (images) or [features]",
    ),
    ("trust_checkpoint=yes", "trust_checkpoint='yes': whether to unpickle more than weights must be true or false"),
]


def settings_message(make_cfg, overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides.split()))
    return str(err.value)


def command_line_message(overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        check_command_line(overrides.split())
    return str(err.value)


@pytest.mark.parametrize(("overrides", "fragment"), COMMAND_LINE)
def test_an_unknown_option_or_setting_is_named_with_the_choices(overrides, fragment):
    message = command_line_message(overrides)
    assert fragment in message and "Valid: " in message


@pytest.mark.parametrize(("overrides", "fragment"), NESTED)
def test_a_nested_typo_is_explained_with_the_settings_that_exist(overrides, fragment):
    assert fragment in explain_override_error(overrides.split())


def test_a_good_command_line_needs_no_explanation():
    assert (
        explain_override_error(
            ["optimizer.lr=0.1", "-m", "model.width=32,64", "regularizer=[dropout]", "regularizer.dropout.p=0.2"]
        )
        is None
    )


@pytest.mark.parametrize(("overrides", "fragment"), SETTINGS)
def test_a_wrong_type_or_range_names_the_key_value_and_range(make_cfg, overrides, fragment):
    assert fragment in settings_message(make_cfg, overrides)


def test_every_problem_is_reported_at_once(make_cfg):
    message = settings_message(make_cfg, "optimizer.lr=-1 data.batch_size=0 trainer.max_epochs=0")
    assert message.count("\n  ") == 3


def test_the_valid_defaults_and_every_experiment_pass(make_cfg):
    validate(make_cfg())
    for experiment in ("digits_mlp", "digits_cnn", "fashion_cnn", "init_study", "fashion_mnist_speed"):
        validate(make_cfg(f"experiment={experiment}", subdir=experiment))
    check_command_line(["activation=tanh", "augment=[hflip,crop]", "-m", "seed=1,2", "+trainer.limit_val_batches=2"])
    check_command_line(["-m", "augment=crop,[hflip,crop,cutout]", "regularizer=[],[mixup,cutmix]"])


FILES = [
    ("ckpt_path=<missing file>", "no such file"),
    ("ckpt_path=<a file that is not a checkpoint>", "is not a readable PyTorch Lightning checkpoint"),
    ("data=mnist data.download=false paths.data_dir=<empty dir>", "MNIST not found: no directory holds all of"),
    ("data=mnist data.download=false paths.data_dir=<dir with a truncated IDX file>", "truncated IDX file"),
    ("data=mnist data.download=false paths.data_dir=<dir with a file of another format>", "wrong magic number"),
]


LOG_DIRS = [
    ("paths.log_dir=/proc/trainlab-logs", "cannot write run outputs to /proc/trainlab-logs"),
    ("paths.log_dir=<a nearly full disk>", "MB free on the disk of"),
]


def log_dir_message(tmp_path, monkeypatch, case: str) -> str:
    import shutil

    if "nearly full" in case:
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=50 * 2**20))
        case = f"paths.log_dir={tmp_path / 'logs'}"
    with pytest.raises(ConfigError) as err:
        check_log_dir([case])
    monkeypatch.undo()
    return str(err.value).replace(str(tmp_path), "<tmp>")


@pytest.mark.parametrize(("case", "fragment"), LOG_DIRS)
def test_an_unwritable_or_full_log_directory_is_refused_at_start(tmp_path, monkeypatch, case, fragment):
    message = log_dir_message(tmp_path, monkeypatch, case)
    assert fragment in message and "nothing was run" in message


def test_a_writable_log_directory_is_checked_and_left_as_it_was(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_log_dir([f"paths.log_dir={target}"]) == target
    assert list(tmp_path.iterdir()) == []  # not created (Hydra makes it when a run starts), the probe file is gone
    target.mkdir(parents=True)
    assert check_log_dir([f"paths.log_dir={target}"]) == target and list(target.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot write run outputs to"):
        check_log_dir([f"paths.log_dir={tmp_path / 'file' / 'logs'}"])


def files_message(make_cfg, tmp_path, case: str) -> str:
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    from .test_datasets import write_mnist

    truncated, other = write_mnist(tmp_path / "truncated"), write_mnist(tmp_path / "other")
    images = truncated / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])  # the last 100 bytes are missing
    (other / "t10k-labels-idx1-ubyte").write_text("label,image\n3,0001.png\n")  # a CSV, not IDX
    overrides = (
        case.replace("<dir with a truncated IDX file>", str(truncated))
        .replace("<dir with a file of another format>", str(other))
        .replace("<missing file>", str(tmp_path / "nope.ckpt"))
        .replace("<a file that is not a checkpoint>", str(garbage))
        .replace("<empty dir>", str(empty))
    )
    with pytest.raises((ConfigError, FileNotFoundError, DataFileError)) as err:
        train(make_cfg(*overrides.split()))
    return str(err.value)


@pytest.mark.parametrize(("case", "fragment"), FILES)
def test_missing_or_unreadable_files_get_one_paragraph(make_cfg, tmp_path, case, fragment):
    assert fragment in files_message(make_cfg, tmp_path, case)


def test_a_checkpoint_with_more_than_weights_needs_trust_checkpoint(make_cfg, tmp_path):
    import argparse

    metrics = train(make_cfg("trainer.max_epochs=1", "test=false", subdir="first"))
    checkpoint = torch.load(metrics["last_ckpt"], weights_only=True)
    checkpoint["notes"] = argparse.Namespace(author="someone")  # an arbitrary Python object: needs unpickling
    path = tmp_path / "with_objects.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(ConfigError, match="trust_checkpoint=true loads it with weights_only=False"):
        train(make_cfg(f"ckpt_path={path}", "trainer.max_epochs=2", subdir="refused"))
    resumed = train(
        make_cfg(f"ckpt_path={path}", "trust_checkpoint=true", "trainer.max_epochs=2", "test=false", subdir="trusted")
    )
    assert resumed["status"] == "completed" and resumed["epochs"] == 2


def test_a_checkpoint_of_another_model_is_refused_naming_the_differences(make_cfg, tmp_path):
    metrics = train(make_cfg("trainer.max_epochs=1", "test=false", "model.width=32", subdir="small"))
    with pytest.raises(ConfigError) as err:
        train(make_cfg(f"ckpt_path={metrics['last_ckpt']}", "model.width=64", "activation=tanh", subdir="big"))
    message = str(err.value)
    assert "was saved by another model" in message
    assert (
        "model.width: checkpoint 32, now 64" in message and "activation.name: checkpoint 'relu', now 'tanh'" in message
    )
    assert not (tmp_path / "big" / "checkpoints").exists()  # refused before training
    # the optimizer's and the scheduler's saved state fit only their own classes (Adam's moments are not SGD's)
    with pytest.raises(ConfigError) as err:
        train(make_cfg(f"ckpt_path={metrics['last_ckpt']}", "model.width=32", "optimizer=sgd", subdir="sgd"))
    assert "optimizer._target_: checkpoint 'torch.optim.Adam', now 'torch.optim.SGD'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        train(make_cfg(f"ckpt_path={metrics['last_ckpt']}", "model.width=32", "scheduler=step", subdir="step"))
    assert "scheduler._target_: checkpoint 'torch.optim.lr_scheduler.CosineAnnealingLR', now" in str(err.value)
    assert not (tmp_path / "sgd" / "checkpoints").exists() and not (tmp_path / "step" / "checkpoints").exists()
    # the same model resumes (other settings, e.g. the learning rate or the epochs, may change)
    resumed = train(
        make_cfg(
            f"ckpt_path={metrics['last_ckpt']}",
            "model.width=32",
            "trainer.max_epochs=2",
            "optimizer.lr=0.0005",
            "test=false",
            subdir="same",
        )
    )
    assert resumed["epochs"] == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["activation=relu6"],
        ["optimizer.lr=-1"],
        ["ckpt_path=/no/such.ckpt"],
        ["paths.log_dir=/proc/trainlab-logs"],
        ["data=mnist", "data.download=false", "paths.data_dir=no_data_here"],
        ["optimizer.lrr=0.1"],
    ],
    ids=["option", "range", "file", "log-dir", "data", "nested-key"],
)
def test_the_command_exits_2_without_a_traceback_and_writes_nothing(tmp_path, args):
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), *args, *QUIET],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    if args[0].startswith(("activation", "paths")):
        assert not (tmp_path / "logs").exists()  # refused before Hydra made a run directory
    elif args[0].startswith("optimizer.lrr"):
        assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]  # Hydra refused to compose
    else:
        assert not list((tmp_path / "logs").rglob("*.ckpt")) and not list((tmp_path / "logs").rglob("metrics.json"))


def console_script_cases() -> list[tuple[str, str, str, str]]:
    """(test file, console script, arguments, message fragment) from every test module's ``CASES``: the bad inputs
    that other test files run end to end through a console script (``CASES_SCRIPT`` in the module, trainlab-train
    by default; a row ``(script, arguments, fragment)`` names its own). Found by looking, not listed: a new test file
    with ``CASES`` gets its rows in the docs."""
    import importlib

    rows = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        if path.stem == Path(__file__).stem:
            continue
        module = importlib.import_module(f"tests.{path.stem}")
        script = getattr(module, "CASES_SCRIPT", "trainlab-train")
        for case in getattr(module, "CASES", []):
            rows.append((path.name, *case) if len(case) == 3 else (path.name, script, *case))
    return rows


def test_the_docs_table_lists_every_case_with_its_message(make_cfg, tmp_path, monkeypatch):
    rows = ["| # | input | message |", "|---|---|---|"]
    cases = [(o, command_line_message(o)) for o, _ in COMMAND_LINE]
    cases += [(o, explain_override_error(o.split())) for o, _ in NESTED]
    cases += [(o, settings_message(make_cfg, o)) for o, _ in SETTINGS]
    cases += [(c, files_message(make_cfg, tmp_path, c)) for c, _ in FILES]
    cases += [(c, log_dir_message(tmp_path, monkeypatch, c)) for c, _ in LOG_DIRS]
    for i, (case, message) in enumerate(cases, start=1):
        first = message.split("\n")[-1].strip() if "nothing was run" in message else message.split("\n")[0]
        first = first.replace(str(tmp_path), "<tmp>").replace("|", "\\|")
        rows.append(f"| {i} | `{case}` | {first[:220]} |")
    more = console_script_cases()
    rows += ["", "## Through the console scripts, end to end", ""]
    rows += [
        "Each row is checked by the test file it names, through the console script or through the function the",
        "script calls first (`<...>` is a file or directory the test makes): the command exits 2 with one line that",
        "contains the fragment shown, and writes nothing.",
        "",
        "| # | command | message contains | test |",
        "|---|---|---|---|",
    ]
    for i, (test_file, script, args, fragment) in enumerate(more, start=len(cases) + 1):
        cells = [f"`{script} {args}`", fragment, f"`tests/{test_file}`"]
        rows.append(f"| {i} | " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    text = (
        "# Bad inputs and the messages they get\n\n"
        f"{len(cases) + len(more)} bad inputs, each one a test. `trainlab-train` and `trainlab-eval` exit with code 2\n"
        "for each, with one line naming the setting, its value and what is allowed, before anything is trained or\n"
        "written. Command-line problems are caught before Hydra starts; settings are checked against their\n"
        "declarations (`src/trainlab/settings.py`, read by `src/trainlab/validate.py`), pairs of settings against\n"
        "`src/trainlab/combinations.py`, and the settings\n"
        "handed to torch and Lightning against those libraries' signatures and constructors\n"
        "(`src/trainlab/library_settings.py`). A run that the machine stops (a full disk, out of memory) ends with\n"
        "one line saying what happened and what to do, exit code 1 (`tests/test_bad_input_kinds.py`). Regenerate\n"
        "this file with `TRAINLAB_WRITE_DOCS=1 pytest tests/test_bad_input.py -k docs`.\n\n"
        "## Checked in the process (`tests/test_bad_input.py`)\n\n" + "\n".join(rows) + "\n"
    )
    path = ROOT / "docs" / "bad_inputs.md"
    if os.environ.get("TRAINLAB_WRITE_DOCS"):
        path.write_text(text)
    assert len(cases) >= 40 and len(more) >= 40
    assert path.read_text() == text, "docs/bad_inputs.md is out of date: TRAINLAB_WRITE_DOCS=1 to rewrite it"
