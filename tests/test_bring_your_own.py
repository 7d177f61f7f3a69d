"""The written contracts (README "Bring your own model, data or technique"), each proven by a user's files that live
OUTSIDE the package: a config directory on Hydra's search path (``hydra.searchpath=[file://...]``) and a Python
module on ``PYTHONPATH``, trained with ``trainlab-train`` as a user types it, every default on.

* a technique: a class with a ``stage`` and a YAML in ``regularizer/``, nothing else edited;
* a model: any ``nn.Module`` with an argument of its own, no ``activation`` argument;
* a data set: a plain ``LightningDataModule`` (not a trainlab class) under the default preprocessing.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TECHNIQUE = '''
import torch

class ConstantPenalty:
    """A loss-stage technique: adds `value` to every training loss (so train/reg_loss is exactly `value`)."""

    stage = "loss"

    def __init__(self, value: float = 0.5):
        self.value = value

    def __call__(self, net):
        return torch.tensor(self.value)


class CountBatches(torch.nn.Module):
    """A normalized-stage technique that counts the batches it sees (written to `count_file` at the end)."""

    stage = "normalized"

    def __init__(self, count_file: str):
        super().__init__()
        self.count_file, self.calls = count_file, 0

    def forward(self, x):
        self.calls += 1
        open(self.count_file, "w").write(str(self.calls))
        return x
'''

MODEL = '''
import math
from typing import Annotated

import torch
from torch import nn

from trainlab.settings import Setting, checked

class Tiny(nn.Module):
    """A user's network: an argument of its own (temperature), no activation argument; its settings declared."""

    @checked
    def __init__(
        self,
        num_classes: int,
        input_shape,
        hidden: Annotated[int, Setting("units of the hidden layer", low=1)] = 32,
        temperature: Annotated[float, Setting("the softmax temperature", low=0, low_open=True)] = 1.0,
    ):
        super().__init__()
        self.register_buffer("temperature", torch.tensor(float(temperature)))
        self.body = nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.Tanh(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.body(x) / self.temperature
'''

DATA = '''
import pytorch_lightning as pl
import torch
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class PlainDigits(pl.LightningDataModule):
    """A plain LightningDataModule: three DataLoaders, nothing from trainlab."""

    def __init__(self, batch_size: int = 64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        x, y = x[order], torch.tensor(y)[order]
        self.train_set = TensorDataset(x[:1200], y[:1200])
        self.val_set = TensorDataset(x[1200:1500], y[1200:1500])
        self.test_set = TensorDataset(x[1500:], y[1500:])

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=256)
'''

CONFIGS = {
    "regularizer/constant.yaml": "constant:\n  _target_: user_techniques.ConstantPenalty\n  value: 0.25\n",
    "augment/counted.yaml": (
        "counted:\n  _target_: user_techniques.CountBatches\n  count_file: ${paths.output_dir}/calls\n"
    ),
    "model/tiny.yaml": (
        "_target_: user_model.Tiny\nnum_classes: ${data.num_classes}\ninput_shape: ${data.input_shape}\n"
        "hidden: 32\ntemperature: 1.0\n"
    ),
    "data/plain.yaml": "_target_: user_data.PlainDigits\nbatch_size: 64\nnum_classes: 10\ninput_shape: [1, 8, 8]\n",
}


@pytest.fixture
def user_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The user's files outside the package; returns (their config dir, the environment that finds their code)."""
    code, configs = tmp_path / "code", tmp_path / "configs"
    code.mkdir()
    for name, text in (("user_techniques", TECHNIQUE), ("user_model", MODEL), ("user_data", DATA)):
        (code / f"{name}.py").write_text(textwrap.dedent(text))
    for rel, text in CONFIGS.items():
        (configs / rel).parent.mkdir(parents=True, exist_ok=True)
        (configs / rel).write_text(text)
    return configs, {"PYTHONPATH": f"{code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def train(tmp_path: Path, configs: Path, env: dict[str, str], *overrides: str) -> tuple[dict, Path]:
    run_dir = tmp_path / "run"
    args = ["trainlab-train", *overrides, f"hydra.searchpath=[file://{configs}]", f"hydra.run.dir={run_dir}"]
    run_cli(args, cwd=tmp_path, env=env)
    return json.loads((run_dir / "metrics.json").read_text()), run_dir


def test_a_technique_from_outside_the_package_trains(tmp_path, user_project) -> None:
    configs, env = user_project
    metrics, run_dir = train(
        tmp_path, configs, env, "regularizer=[constant]", "augment=[counted]", "trainer.max_epochs=2"
    )
    assert metrics["status"] == "completed" and metrics["steps"] == 40  # 1,257 digits / 64 -> 20 steps per epoch
    assert metrics["train/reg_loss"] == pytest.approx(0.25, abs=1e-7)  # the loss stage added the user's term
    assert int((run_dir / "calls").read_text()) == 40  # the normalized stage saw every training batch, only those
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["trainlab"]["config"]
    assert saved["regularizer"]["constant"] == {"_target_": "user_techniques.ConstantPenalty", "value": 0.25}


def test_a_user_model_with_an_argument_of_its_own_trains_under_the_default_config(tmp_path, user_project) -> None:
    configs, env = user_project
    metrics, run_dir = train(tmp_path, configs, env, "model=tiny", "model.temperature=3.0", "trainer.max_epochs=3")
    assert metrics["status"] == "completed" and metrics["test/acc"] > 0.5  # it learns (chance is 0.1)
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["net.temperature"].item() == 3.0  # its own argument reached it
    assert state["net.body.1.weight"].shape == (32, 64)  # input_shape [1, 8, 8] flattened

    # the user's code not on PYTHONPATH: one line naming the module, exit 2, no run directory, for both scripts
    for script, args in (
        ("trainlab-train", ["model=tiny", f"hydra.searchpath=[file://{configs}]", f"hydra.run.dir={tmp_path}/no"]),
        ("trainlab-eval", [f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"hydra.run.dir={tmp_path}/no"]),
    ):
        line = refused_line(script, args, tmp_path)
        assert "model._target_=user_model.Tiny: no module named 'user_model' on the Python path" in line, line
        assert not (tmp_path / "no").exists()


def refused_line(script: str, args: list[str], cwd: Path) -> str:
    """The one line ``script args`` is refused with (exit 2, no traceback)."""
    import subprocess

    from tests.conftest import BIN

    proc = subprocess.run(
        [str(BIN / script), *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stdout[-2000:] + proc.stderr[-3000:]
    (line,) = proc.stderr.strip().splitlines()
    return line


def test_a_plain_lightning_datamodule_trains_under_the_default_config(tmp_path, user_project) -> None:
    from sklearn.datasets import load_digits

    configs, env = user_project
    metrics, run_dir = train(tmp_path, configs, env, "data=plain", "trainer.max_epochs=2")
    assert metrics["status"] == "completed" and metrics["test/acc"] > 0.8
    assert metrics["steps"] == 2 * 19  # 1,200 training images / 64: 19 batches per epoch, from its DataLoader
    # preprocess=normalize took its statistics from the data module's training split (its train_dataloader)
    x, _ = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    train_x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))][:1200]
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.allclose(state["preprocess.mean"].flatten(), train_x.mean().view(1), atol=1e-6)
    assert torch.allclose(state["preprocess.std"].flatten(), train_x.std().view(1), rtol=1e-3)


def test_a_user_models_declared_settings_are_checked_before_the_run_and_when_built(tmp_path, user_project) -> None:
    """The user's model declares its settings in its signature (``Annotated[float, Setting(...)]``), as trainlab's own
    classes do: ``trainlab-train`` refuses a bad value in one line, exit 2, with nothing written; the declaration is
    read without importing torch (or the user's module); building the class from Python checks the same range."""
    import subprocess
    import sys

    from tests.conftest import BIN

    configs, env = user_project
    run_dir = tmp_path / "refused"
    args = ["model=tiny", "model.temperature=0", f"hydra.searchpath=[file://{configs}]"]
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr and not run_dir.exists()
    (line,) = proc.stderr.strip().splitlines()
    assert line == "trainlab-train: model.temperature=0: the softmax temperature must be a number > 0; nothing was run"
    # a typo in a nested key of the user's config is explained as for trainlab's own (not Hydra's traceback-like text)
    typo = refused_line("trainlab-train", ["model=tiny", "model.tempreature=2", args[-1]], tmp_path)
    assert "model.tempreature=2: 'tempreature' is not a setting of model; did you mean 'temperature'?" in typo

    probe = (
        "import sys; from trainlab.settings import declared; d = declared('user_model.Tiny'); "
        "print(sorted(d), d['temperature'].allowed(), 'torch' in sys.modules, 'user_model' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["['hidden',", "'temperature']", "a", "number", ">", "0", "False", "False"]

    sys.path.insert(0, env["PYTHONPATH"].split(os.pathsep)[0])
    try:
        from user_model import Tiny  # type: ignore[import-not-found]

        with pytest.raises(ValueError, match=r"^temperature=-1\.0: the softmax temperature must be a number > 0$"):
            Tiny(num_classes=10, input_shape=[1, 8, 8], temperature=-1.0)
        assert Tiny(num_classes=10, input_shape=[1, 8, 8], temperature=2.0).temperature.item() == 2.0
    finally:
        sys.path.pop(0)
        sys.modules.pop("user_model", None)


def test_the_rules_of_trainlabs_own_classes_do_not_judge_a_users_class(make_cfg, tmp_path, monkeypatch) -> None:
    """model.pool must be max/avg/none for trainlab's CNN; a user's network with a `pool` of its own is not refused."""
    from trainlab.errors import ConfigError
    from trainlab.validate import validate

    (tmp_path / "user_model.py").write_text("class Net:\n    def __init__(self, pool='sum', hidden=0, **kw): ...\n")
    (tmp_path / "user_data.py").write_text("class Loader:\n    def __init__(self, batch_size=0, **kw): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(ConfigError, match=r"model\.pool='sum': the CNN's pooling must be one of max, avg, none"):
        validate(make_cfg("model=cnn", "model.pool=sum"))
    validate(make_cfg("model=cnn", "model._target_=user_model.Net", "model.pool=sum", "model.hidden=0"))
    with pytest.raises(ConfigError, match=r"data\.batch_size=0"):
        validate(make_cfg("data.batch_size=0"))
    validate(make_cfg("data._target_=user_data.Loader", "data.batch_size=0"))  # its own constructor decides


def test_every_technique_option_at_once_as_a_user_types_it(tmp_path) -> None:
    """Every augment option and every regularizer the MLP takes, in one `trainlab-train` with the defaults on
    (progress bar, printed config, callbacks, csv logger); the lists are read from configs/, not kept here."""
    import inspect

    import hydra
    from omegaconf import OmegaConf

    from trainlab import CONFIG_DIR
    from trainlab.models.mlp import MLP

    def options(group: str) -> list[str]:
        return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))

    mlp_takes = inspect.signature(MLP).parameters
    regularizers = []
    for name in options("regularizer"):
        cls = hydra.utils.get_class(OmegaConf.load(CONFIG_DIR / "regularizer" / f"{name}.yaml")[name]["_target_"])
        if cls.stage != "layer" or cls.argument in mlp_takes:
            regularizers.append(name)
    if "alpha_dropout" in regularizers and "dropout" in regularizers:
        regularizers.remove("alpha_dropout")  # AlphaDropout goes with selu, dropout with relu
    run_dir = tmp_path / "run"
    args = [
        "trainlab-train",
        "data=synthetic",
        "data.input_shape=[3,8,8]",  # colour images: color_jitter needs three channels
        f"augment=[{','.join(options('augment'))}]",
        f"regularizer=[{','.join(regularizers)}]",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=5",
        f"hydra.run.dir={run_dir}",
    ]
    proc = run_cli(args, cwd=tmp_path)
    assert "CONFIG" in proc.stdout + proc.stderr  # the printed config tree, a default
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 5 and metrics["train/reg_loss"] > 0
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["trainlab"]["config"]
    assert set(saved["augment"]) == set(options("augment")) and set(saved["regularizer"]) == set(regularizers)
