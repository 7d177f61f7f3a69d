"""Bad inputs by kind, for trainlab-train and trainlab-eval: each is refused with one line naming the setting, exit 2,
before anything is written, and an earlier run's files are left as they were. What can only fail during a run (a
full disk, out of memory) ends with one line saying what happened and what to do, exit 1.

The kinds (an outside list of further bad inputs, tried on both console scripts, found each of them):

* a constructor's own ``ValueError`` (trainlab's classes, the README's refused combinations);
* settings handed to a library: torch's optimizers and schedules, Lightning's ``Trainer`` and callbacks. They are
  checked against the library's signature and built once before the run (:mod:`trainlab.library_settings`);
  what Lightning accepts and fails on mid-run is in the schema (:mod:`trainlab.validate`);
* settings accepted silently or ignored (``+unknown_key=1``, ``trainer.gradient_clip_val=-1``);
* valid values that were refused (``trainer.precision=32``, an int to Hydra): they run;
* a message that contradicted itself (``callbacks.early_stopping`` under ``ensemble=snapshot``);
* data files (and checkpoints) the system refuses to read: permission, an I/O error;
* a disk that fills up, and memory that runs out, during the run.

Every row of :data:`CASES` is checked in the process, the way the console script takes it (the command line, then
Hydra's composition, then the task); one row of each kind and script runs through the console script itself
(:data:`THROUGH_THE_SCRIPT`). The rows are also in docs/bad_inputs.md (tests/test_bad_input.py collects them).
"""

from __future__ import annotations

import errno
import os
import pathlib
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from trainlab.data.files import DataFileError
from trainlab.errors import ConfigError, refusal
from trainlab.validate import check_command_line, explain_override_error

from .conftest import BIN, ROOT, compose_cfg

#: (console script, arguments as typed, a fragment of its one line); ``<...>`` are made by :func:`placeholders`
CASES = [
    # ---- a setting a class declares (trainlab.settings), and a constructor's own ValueError ----
    (
        "trainlab-train",
        "model=resnet model.depth=9",
        "model.depth=9: a CIFAR ResNet has 6n+2 layers, n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)",
    ),
    (
        "trainlab-train",
        "data=synthetic data.noise=-1",
        "data.noise=-1: standard deviation of the noise added to the class templates must be a number >= 0",
    ),
    ("trainlab-train", "recipe=overfit model=resnet model.depth=9", "model.depth=9: a CIFAR ResNet has 6n+2 layers"),
    (
        "trainlab-train",
        "callbacks.progress_bar.update_every=0",
        "callbacks.progress_bar.update_every=0: batches between updates of the progress bar must be an integer >= 1",
    ),
    ("trainlab-train", "extras.threads=0", "extras.threads=0: PyTorch's threads must be auto or an integer >= 1"),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> +model.sizes=[0]",
        "model.sizes=[0]: every hidden size must be >= 1",
    ),
    # ---- torch's optimizers: the signature, then the optimizer built on a dummy parameter ----
    (
        "trainlab-train",
        "optimizer.betas=[2,0.9]",
        "optimizer.betas=[2, 0.9]: torch.optim.Adam refuses it (Invalid beta parameter at index 0: 2)",
    ),
    ("trainlab-train", "optimizer.betas=[0.9]", "optimizer.betas=[0.9]: torch.optim.Adam takes a list of 2 numbers"),
    ("trainlab-train", "optimizer.eps=-1", "optimizer.eps=-1: torch.optim.Adam refuses it (Invalid epsilon value: -1)"),
    (
        "trainlab-train",
        "optimizer=rmsprop optimizer.alpha=-1",
        "optimizer.alpha=-1: torch.optim.RMSprop refuses it (Invalid alpha value: -1)",
    ),
    (
        "trainlab-train",
        "optimizer=sgd +optimizer.nesterov=true",
        "optimizer.nesterov=True: torch.optim.SGD refuses it (Nesterov momentum requires a momentum and zero "
        "dampening)",
    ),
    (
        "trainlab-train",
        "optimizer=sgd optimizer.nesterov=true",
        "optimizer.nesterov=true: 'nesterov' is not a setting of optimizer. Settings of optimizer: lr, momentum, "
        "weight_decay. To add a new key instead: +optimizer.nesterov=true",
    ),
    (
        "trainlab-train",
        "+optimizer.foo=1",
        "optimizer.foo=1: torch.optim.Adam has no setting 'foo'; its settings are lr, betas, eps, weight_decay",
    ),
    (
        "trainlab-train",
        "+optimizer.betaz=[0.9,0.99]",
        "optimizer.betaz=[0.9, 0.99]: torch.optim.Adam has no setting 'betaz'; did you mean 'betas'?",
    ),
    # ---- torch's schedules: built on the run's optimizer ----
    (
        "trainlab-train",
        "scheduler=plateau scheduler.factor=2",
        "scheduler.factor=2: torch.optim.lr_scheduler.ReduceLROnPlateau refuses it (Factor should be < 1.0.)",
    ),
    (
        "trainlab-train",
        "scheduler=plateau scheduler.mode=up",
        "scheduler.mode='up': torch.optim.lr_scheduler.ReduceLROnPlateau takes min or max",
    ),
    (
        "trainlab-train",
        "+scheduler.foo=1",
        "scheduler.foo=1: torch.optim.lr_scheduler.CosineAnnealingLR has no setting 'foo'; its settings are T_max, "
        "eta_min, last_epoch (and trainlab's interval, monitor, frequency)",
    ),
    (
        "trainlab-train",
        "scheduler.T_max=0",
        "scheduler.T_max=0: the cosine's length in epochs (or steps) must be an integer >= 1",
    ),
    # ---- Lightning's Trainer: the machine, the signature, Trainer(...) itself, and what it only finds mid-run ----
    ("trainlab-train", "trainer.accelerator=tpu", "trainer.accelerator=tpu: this machine has no TPU"),
    (
        "trainlab-train",
        "trainer.devices=0",
        "trainer.devices=0: pytorch_lightning.Trainer refuses it (`Trainer(devices=0)` value is not a valid input",
    ),
    (
        "trainlab-train",
        "trainer.devices=abc",
        "trainer.devices='abc': pytorch_lightning.Trainer refuses it (`devices` selected with `CPUAccelerator`",
    ),
    (
        "trainlab-train",
        "+trainer.strategy=nonsense",
        "trainer.strategy='nonsense': pytorch_lightning.Trainer refuses it (You selected an invalid strategy name",
    ),
    (
        "trainlab-train",
        "+trainer.max_steps=-5",
        "trainer.max_steps=-5: pytorch_lightning.Trainer refuses it (`max_steps` must be a non-negative integer or -1",
    ),
    (
        "trainlab-train",
        "+trainer.limit_train_batches=1.5",
        "trainer.limit_train_batches=1.5: pytorch_lightning.Trainer refuses it (You have passed invalid value 1.5",
    ),
    (
        "trainlab-train",
        "+trainer.max_time=abc",
        "trainer.max_time='abc': pytorch_lightning.Trainer refuses it (`Timer(duration='abc')` is not a valid",
    ),
    (
        "trainlab-train",
        "+trainer.gradient_clip_algorithm=sideways",
        "trainer.gradient_clip_algorithm='sideways': pytorch_lightning.Trainer refuses it",
    ),
    (
        "trainlab-train",
        "trainer.deterministic=maybe",
        "trainer.deterministic='maybe': pytorch_lightning.Trainer takes true, false, warn or null",
    ),
    (
        "trainlab-train",
        "+trainer.foo=1",
        "trainer.foo=1: pytorch_lightning.Trainer has no setting 'foo'; its settings are accelerator, strategy",
    ),
    (
        "trainlab-train",
        "trainer.check_val_every_n_epoch=0",
        "trainer.check_val_every_n_epoch=0: epochs between validations must be an integer >= 1",
    ),
    (
        "trainlab-train",
        "+trainer.accumulate_grad_batches=0",
        "trainer.accumulate_grad_batches=0: batches whose gradients add up to one step must be an integer >= 1",
    ),
    (
        "trainlab-train",
        "+trainer.val_check_interval=0",
        "trainer.val_check_interval=0: batches (or share of an epoch) between validations must be a number > 0",
    ),
    (
        "trainlab-train",
        "trainer.min_epochs=50",
        "trainer.min_epochs=50 must be <= trainer.max_epochs=40 (the run ends after 40 epochs)",
    ),
    ("trainlab-eval", "ckpt_path=<a checkpoint> trainer.accelerator=tpu", "trainer.accelerator=tpu: this machine has"),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> trainer.devices=0",
        "trainer.devices=0: pytorch_lightning.Trainer refuses it",
    ),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> +trainer.limit_test_batches=-1",
        "trainer.limit_test_batches=-1: pytorch_lightning.Trainer refuses it",
    ),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> trainer.deterministic=maybe",
        "trainer.deterministic='maybe': pytorch_lightning.Trainer takes true, false, warn or null",
    ),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> +trainer.foo=1",
        "trainer.foo=1: pytorch_lightning.Trainer has no setting 'foo'",
    ),
    # ---- Lightning's callbacks and loggers ----
    (
        "trainlab-train",
        "callbacks.model_checkpoint.mode=maximize",
        "callbacks.model_checkpoint.mode='maximize': trainlab.callbacks.ModelCheckpoint refuses it (`mode` can be min, "
        "max but got maximize)",
    ),
    (
        "trainlab-train",
        "callbacks.early_stopping.mode=up",
        "callbacks.early_stopping.mode='up': trainlab.callbacks.EarlyStopping refuses it",
    ),
    (
        "trainlab-train",
        "callbacks.lr_monitor.logging_interval=hour",
        "callbacks.lr_monitor.logging_interval='hour': pytorch_lightning.callbacks.LearningRateMonitor takes step, "
        "epoch or null",
    ),
    (
        "trainlab-train",
        "+callbacks.model_checkpoint.every_n_epoch=2",
        "callbacks.model_checkpoint.every_n_epoch=2: trainlab.callbacks.ModelCheckpoint has no setting "
        "'every_n_epoch'; did you mean 'every_n_epochs'?",
    ),
    (
        "trainlab-train",
        "callbacks.model_checkpoint.monitor=val/accc",
        "callbacks.model_checkpoint.monitor='val/accc': not a metric this run logs; did you mean 'val/acc'? It logs "
        "train/loss, train/acc, train/reg_loss, val/loss, val/acc, val/acc_best",
    ),
    (
        "trainlab-train",
        "scheduler=plateau scheduler.monitor=val_loss",
        "scheduler.monitor='val_loss': not a metric this run logs; did you mean 'val/loss'?",
    ),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> +logger.csv.foo=1",
        "logger.csv.foo=1: pytorch_lightning.loggers.CSVLogger has no setting 'foo'",
    ),
    # ---- accepted silently, or ignored, before ----
    ("trainlab-train", "+unknown_key=1", "+unknown_key=...: 'unknown_key' is not a setting, nothing would read it"),
    ("trainlab-train", "+optimiser.lr=0.1", "'optimiser' is not a setting, nothing would read it; did you mean"),
    (
        "trainlab-train",
        "+trainer.gradient_clip_val=-1",
        "trainer.gradient_clip_val=-1: the gradient clipping threshold (0: none) must be a number >= 0",
    ),
    (
        "trainlab-train",
        "trainer.num_sanity_val_steps=-2",
        "trainer.num_sanity_val_steps=-2: validation batches checked before training (-1: all) must be an integer",
    ),
    (
        "trainlab-train",
        "trainer.log_every_n_steps=-1",
        "trainer.log_every_n_steps=-1: steps between logged training metrics (0: none) must be an integer >= 0",
    ),
    (
        "trainlab-train",
        "data.val_fraction=0.9 data.test_fraction=0.9",
        "data.val_fraction=0.9 and data.test_fraction=0.9 hold out 1.8 of the data, nothing is left to train on",
    ),
    (
        "trainlab-train",
        "+data.foo=1",
        "data.foo=1: trainlab.data.digits.DigitsDataModule has no setting 'foo'; its settings are batch_size,",
    ),
    ("trainlab-train", "data.num_classes=5", "data.num_classes=5: the DigitsDataModule data have num_classes=10"),
    (
        "trainlab-train",
        "data=fashion_mnist data.input_shape=[1,32,32]",
        "data.input_shape=[1, 32, 32]: the FashionMNISTDataModule data have input_shape=[1, 28, 28]",
    ),
    ("trainlab-eval", "ckpt_path=<a checkpoint> +unknown_key=1", "'unknown_key' is not a setting, nothing would read"),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint> +data.val_fraction=0.9 +data.test_fraction=0.9",
        "data.val_fraction=0.9 and data.test_fraction=0.9 hold out 1.8 of the data",
    ),
    # ---- a message that contradicted itself ("... is not a setting; did you mean 'early_stopping'?") ----
    (
        "trainlab-train",
        "ensemble=snapshot callbacks.early_stopping.patience=3",
        "callbacks.early_stopping.patience=3: callbacks.early_stopping is switched off by ensemble=snapshot "
        '(configs/ensemble/snapshot.yaml: "Early stopping is off: the cycles need the whole run.")',
    ),
    (
        "trainlab-train",
        "ensemble=snapshot callbacks.early_stopping.patience=-1",
        "callbacks.early_stopping.patience=-1: callbacks.early_stopping is switched off by ensemble=snapshot",
    ),
    # ---- files the system refuses to read ----
    (
        "trainlab-train",
        "data=mnist data.download=false paths.data_dir=<a dir whose files may not be read>",
        "train-images-idx3-ubyte: cannot read this data file (Permission denied): give your user read permission",
    ),
    (
        "trainlab-train",
        "data=mnist data.download=false paths.data_dir=<a dir whose disk fails to read>",
        "train-images-idx3-ubyte: cannot read this data file (Input/output error): the disk or the network file",
    ),
    (
        "trainlab-train",
        "data=mnist data.download=false paths.data_dir=<a dir that may not be listed>",
        "cannot read this data directory (Permission denied): give your user read permission (chmod u+rx",
    ),
    (
        "trainlab-eval",
        "ckpt_path=<a checkpoint that may not be read>",
        "cannot read this file (Permission denied): give your user read permission (chmod u+r",
    ),
    # ---- into the directory of an earlier run (it must stay as it was) ----
    (
        "trainlab-train",
        "hydra.run.dir=<an earlier run> overwrite=true trainer.devices=0",
        "trainer.devices=0: pytorch_lightning.Trainer refuses it",
    ),
    (
        "trainlab-train",
        "ckpt_path=<an earlier run>/checkpoints/last.ckpt hydra.run.dir=<an earlier run> optimizer.betas=[2,0.9]",
        "optimizer.betas=[2, 0.9]: torch.optim.Adam refuses it",
    ),
]

#: the rows that also run through the console script: one of each kind and script
THROUGH_THE_SCRIPT = [
    "model=resnet model.depth=9",
    "ckpt_path=<a checkpoint> +model.sizes=[0]",
    "optimizer.betas=[2,0.9]",
    "+scheduler.foo=1",
    "trainer.devices=0",
    "trainer.check_val_every_n_epoch=0",
    "ckpt_path=<a checkpoint> +trainer.foo=1",
    "callbacks.model_checkpoint.mode=maximize",
    "+unknown_key=1",
    "ckpt_path=<a checkpoint> +unknown_key=1",
    "ensemble=snapshot callbacks.early_stopping.patience=3",
    "data=mnist data.download=false paths.data_dir=<a dir whose files may not be read>",
    "ckpt_path=<a checkpoint that may not be read>",
    "hydra.run.dir=<an earlier run> overwrite=true trainer.devices=0",
    "ckpt_path=<an earlier run>/checkpoints/last.ckpt hydra.run.dir=<an earlier run> optimizer.betas=[2,0.9]",
]
SCRIPT_OF = {args: script for script, args, _ in CASES}
FRAGMENT_OF = {args: fragment for _, args, fragment in CASES}

#: the placeholder whose files the system refuses to read, and how (see :func:`install_fault`)
FAULTS = {
    "<a dir whose files may not be read>": "EACCES",
    "<a dir whose disk fails to read>": "EIO",
    "<a dir that may not be listed>": "EACCES-DIR",
    "<a checkpoint that may not be read>": "EACCES",
}


# ---- the files the rows name, and the faults the tests cannot make for real (they run as root, say) ----
def fake_checkpoint(path: Path) -> Path:
    """A checkpoint as trainlab-train writes one (the run's model and data settings in it; no weights: every case
    is refused before they are loaded)."""
    import torch
    from omegaconf import OmegaConf

    from trainlab.checkpoints import MODEL_KEYS

    cfg = compose_cfg(path.parent / "composed", ["model.depth=1", "model.width=8"])
    config = {k: OmegaConf.to_container(cfg[k], resolve=True) if cfg.get(k) is not None else None for k in MODEL_KEYS}
    torch.save({"state_dict": {}, "epoch": 0, "trainlab": {"config": config}}, path)
    return path


def placeholders(tmp_path: Path, earlier_run: Path | None = None) -> dict[str, str]:
    from .test_datasets import write_mnist

    paths = {
        "<a checkpoint>": fake_checkpoint(tmp_path / "good.ckpt"),
        "<a checkpoint that may not be read>": fake_checkpoint(tmp_path / "locked.ckpt"),
        "<an earlier run>": earlier_run or tmp_path / "earlier",
    }
    for placeholder in FAULTS:
        if placeholder.startswith("<a dir"):
            paths[placeholder] = write_mnist(tmp_path / placeholder.strip("<>").replace(" ", "_"))
    return {k: str(v) for k, v in paths.items()}


def arguments(case: str, paths: dict[str, str]) -> list[str]:
    for placeholder, path in paths.items():
        case = case.replace(placeholder, path)
    return case.split()


def install_fault(fault: str, path: str) -> typing.Callable[[], None]:
    """Make the system refuse to read ``path`` (a file, or the files of a directory) as ``fault`` says: ``EACCES``
    (permission), ``EIO`` (an I/O error), ``EACCES-DIR`` (the directory may not be listed). Returns the undo."""
    target = Path(path)
    code = errno.EIO if fault == "EIO" else errno.EACCES
    error = OSError if fault == "EIO" else PermissionError
    originals = {name: getattr(pathlib.Path, name) for name in ("read_bytes", "open", "is_file")}

    def hit(p: pathlib.Path) -> bool:
        return p == target or p.parent == target

    def read_bytes(self):
        if hit(self) and fault != "EACCES-DIR":
            raise error(code, os.strerror(code), str(self))
        return originals["read_bytes"](self)

    def open_(self, *args, **kwargs):
        if hit(self) and fault != "EACCES-DIR":
            raise error(code, os.strerror(code), str(self))
        return originals["open"](self, *args, **kwargs)

    def is_file(self):
        if fault == "EACCES-DIR" and self.parent == target:
            raise PermissionError(code, os.strerror(code), str(self))
        return originals["is_file"](self)

    pathlib.Path.read_bytes, pathlib.Path.open, pathlib.Path.is_file = read_bytes, open_, is_file

    def undo() -> None:
        for name, original in originals.items():
            setattr(pathlib.Path, name, original)

    return undo


def faults_of(case: str, paths: dict[str, str]) -> list[tuple[str, str]]:
    return [(fault, paths[p]) for p, fault in FAULTS.items() if p in case]


# ---- in the process: the path the console script takes ----
def refused_in_process(script: str, args: list[str], out: Path) -> str:
    """What ``script args`` prints, the way its console script gets there: the command line (before Hydra), Hydra's
    composition (explained when it fails), then the task (:func:`trainlab.train.train`, ``trainlab.eval.evaluate``),
    which must refuse. ``out``: the run directory."""
    from trainlab.eval import evaluate
    from trainlab.train import train

    config = "train" if script == "trainlab-train" else "eval"
    try:
        check_command_line(args, config_name=config)
    except ConfigError as err:
        return refusal(script, err)
    try:
        cfg = compose_cfg(out, [a for a in args if not a.startswith("hydra.run.dir=")], config_name=config)
    except Exception:  # noqa: BLE001 - Hydra cannot compose: the console script explains why
        explanation = explain_override_error(args, config_name=config)
        assert explanation, args
        return refusal(script, f"invalid command line, nothing was run:\n  {explanation}")
    with pytest.raises((ConfigError, FileNotFoundError, DataFileError)) as err:
        (train if config == "train" else evaluate)(cfg)
    return refusal(script, err.value)


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in path.rglob("*") if p.is_file()} if path.exists() else {}


@pytest.mark.parametrize(("script", "case", "fragment"), CASES, ids=[f"{s[9:]}:{c}" for s, c, _ in CASES])
def test_each_bad_input_gets_one_line_naming_it_and_nothing_is_written(tmp_path, script, case, fragment):
    paths = placeholders(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    undo = [install_fault(fault, path) for fault, path in faults_of(case, paths)]
    try:
        line = refused_in_process(script, arguments(case, paths), out)
    finally:
        for u in undo:
            u()
    line = line.replace(str(tmp_path), "<tmp>")
    assert "\n" not in line and line.startswith(f"{script}: "), line
    assert fragment in line, line
    assert files_under(out) == {}  # nothing of the run was written


def test_every_row_of_the_script_list_is_a_case():
    assert set(THROUGH_THE_SCRIPT) <= set(SCRIPT_OF)
    assert {SCRIPT_OF[c] for c in THROUGH_THE_SCRIPT} == {"trainlab-train", "trainlab-eval"}


# ---- valid values that were refused ----
@pytest.mark.parametrize("precision", ["32", "16", "64", "bf16", "'32'", "32-true", "bf16-mixed", "16-mixed"])
def test_every_precision_lightning_takes_is_accepted(make_cfg, precision):
    from trainlab.library_settings import check_library_settings
    from trainlab.validate import validate

    cfg = make_cfg(f"trainer.precision={precision}")
    validate(cfg)
    check_library_settings(cfg)


def test_the_precisions_of_the_schema_are_lightnings():
    """The schema (read before torch is imported) lists what Lightning's Trainer declares it takes."""
    from pytorch_lightning.trainer.connectors.accelerator_connector import _PRECISION_INPUT

    from trainlab.library_settings import PRECISIONS

    ours = typing.get_args(PRECISIONS)
    declared = {a for literal in typing.get_args(_PRECISION_INPUT) for a in typing.get_args(literal)}
    assert set(ours) == declared and len(ours) == len(declared)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["optimizer=sgd"],
        ["optimizer=momentum", "scheduler=step"],
        ["optimizer=nesterov", "scheduler=onecycle"],
        ["optimizer=rmsprop", "scheduler=plateau"],
        ["optimizer=adamw", "scheduler=none"],
        ["trainer=ddp_cpu"],
        ["logger=tensorboard", "callbacks=[default,activation_stats]"],
        ["experiment=fashion_mnist_speed"],
        ["ensemble=snapshot", "trainer.max_epochs=5"],
        ["debug=fdr"],
    ],
    ids=lambda o: " ".join(o) or "defaults",
)
def test_the_shipped_settings_pass_the_library_checks(make_cfg, overrides):
    from trainlab.library_settings import library_problems

    assert library_problems(make_cfg(*overrides)) == []


# ---- through the console scripts ----
def run_script(script: str, args: list[str], cwd: Path, faults: list[tuple[str, str]] = (), patch: str = ""):
    """``script args`` in ``cwd``; with ``faults`` or ``patch`` (Python run first), through a ``python -c`` that
    installs them in the process and then calls the script's ``cli()``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    if not faults and not patch:
        command = [str(BIN / script), *args]
    else:
        module = "train" if script == "trainlab-train" else "eval"
        code = "\n".join(
            [
                "import sys",
                f"sys.path.insert(0, {str(ROOT)!r})",
                "from tests.test_bad_input_kinds import install_fault",
                *(f"install_fault({f!r}, {p!r})" for f, p in faults),
                patch,
                f"sys.argv = [{script!r}, *sys.argv[1:]]",
                f"from trainlab.{module} import cli",
                "cli()",
            ]
        )
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory) -> Path:
    """A finished run (``trainer.precision=32``: an int to Hydra, refused before; it trains): its directory."""
    cwd = tmp_path_factory.mktemp("earlier")
    run_dir = cwd / "earlier"
    proc = run_script(
        "trainlab-train",
        ["trainer.precision=32", "trainer.max_epochs=1", f"hydra.run.dir={run_dir}", "extras.print_config=false"],
        cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_trainer_precision_32_trains(earlier_run):
    import json

    metrics = json.loads((earlier_run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 1
    assert (earlier_run / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_the_metrics_a_monitor_may_name_are_those_a_run_logs(earlier_run):
    import json

    from trainlab.library_settings import METRICS

    logged = {k for k in json.loads((earlier_run / "metrics.json").read_text()) if k.split("/")[0] in ("train", "val")}
    assert logged <= set(METRICS) and set(METRICS) - logged == {"train/reg_loss"}  # that one with a weight penalty


@pytest.mark.slow
@pytest.mark.parametrize("case", THROUGH_THE_SCRIPT)
def test_the_console_script_exits_2_with_one_line_and_leaves_every_file_as_it_was(tmp_path, earlier_run, case):
    script = SCRIPT_OF[case]
    paths = placeholders(tmp_path, earlier_run)
    before = files_under(tmp_path) | files_under(earlier_run)
    proc = run_script(script, arguments(case, paths), tmp_path, faults=faults_of(case, paths))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: "), proc.stderr
    assert FRAGMENT_OF[case] in lines[0].replace(str(tmp_path), "<tmp>")
    assert files_under(tmp_path) | files_under(earlier_run) == before  # nothing written, nothing touched
    assert not (tmp_path / "logs").exists()


# ---- what can only fail during the run: one line saying what happened and what to do, exit 1 ----
FULL_DISK_AT_THE_THIRD_SAVE = """
import errno, os, torch
saves = []
real_save = torch.save
def save(obj, f, *args, **kwargs):
    saves.append(f)
    if len(saves) > 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(obj, f, *args, **kwargs)
torch.save = save
"""

OUT_OF_MEMORY_AT_THE_THIRD_BATCH = """
import torch
from trainlab.classifier import Classifier
real_step = Classifier.training_step
def training_step(self, batch, batch_idx):
    if batch_idx == 2:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return real_step(self, batch, batch_idx)
Classifier.training_step = training_step
"""


@pytest.mark.slow
def test_a_full_disk_during_the_run_says_which_file_and_how_to_go_on(tmp_path):
    run_dir = tmp_path / "run"
    args = ["trainer.max_epochs=3", f"hydra.run.dir={run_dir}", "extras.print_config=false"]
    proc = run_script("trainlab-train", args, tmp_path, patch=FULL_DISK_AT_THE_THIRD_SAVE)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-3000:]
    assert "Traceback" not in output
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("trainlab-train: ")]
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"the run stopped writing {run_dir}/checkpoints/" in line and "the disk is full" in line
    assert "free some space there, or choose a directory on another disk with hydra.run.dir=<dir>" in line
    assert line.endswith(f"then continue from the last checkpoint written whole: ckpt_path={last}")
    assert last.is_file() and not list(run_dir.rglob("*.tmp"))  # the checkpoint before the full disk is whole


@pytest.mark.slow
def test_out_of_memory_during_the_run_names_the_batch_size(tmp_path):
    args = ["trainer.max_epochs=1", "extras.print_config=false", "trainer.enable_progress_bar=false"]
    proc = run_script("trainlab-train", args, tmp_path, patch=OUT_OF_MEMORY_AT_THE_THIRD_BATCH)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "Traceback" not in output, output[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("trainlab-train: ")]
    assert "out of GPU memory at batch size 64 (data.batch_size=64): lower data.batch_size" in line
    assert "no checkpoint was written yet: start the run again" in line


@pytest.mark.parametrize(
    ("err", "fragment"),
    [
        (OSError(errno.EROFS, "Read-only file system", "/runs/x/metrics.json"), "the file system is read-only"),
        (OSError(errno.EDQUOT, "Disk quota exceeded", "/runs/x/a.ckpt"), "free some space there"),
        (PermissionError(errno.EACCES, "Permission denied", "/runs/x/a.ckpt"), "choose a writable directory"),
        (MemoryError(), "out of main memory at batch size 64 (data.batch_size=64)"),
    ],
)
def test_what_stops_a_run_is_said_in_one_line(make_cfg, err, fragment):
    from trainlab.console import stopped_by_machine

    line = stopped_by_machine(err, make_cfg())
    assert fragment in line and "\n" not in line
    assert stopped_by_machine(OSError(errno.ECONNRESET, "reset"), make_cfg()) is None  # not the machine: a traceback
