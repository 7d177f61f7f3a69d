"""The speed options work and change nothing they should not: threads, channels_last, bf16, compile, the lean
callbacks, and the fashion_mnist_speed recipe (its timed run is a GPU benchmark; here it is checked on the CPU)."""

from __future__ import annotations

import math
import os
import pickle
from copy import deepcopy
from functools import partial

import pytest
import torch
import yaml
from pytorch_lightning.callbacks import EarlyStopping as LightningEarlyStopping
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

from trainlab import outputs
from trainlab.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from trainlab.classifier import Classifier
from trainlab.models.cnn import CNN
from trainlab.train import train

from .conftest import ROOT


def test_threads_auto_splits_the_cores_between_ddp_processes_on_the_cpu(make_cfg, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert outputs.torch_threads(make_cfg()) is None  # one process: torch's default
    assert outputs.torch_threads(make_cfg("trainer=ddp_cpu")) == 4  # 2 processes on 8 cores
    assert outputs.torch_threads(make_cfg("trainer=ddp_cpu", "trainer.devices=8")) == 1
    assert outputs.torch_threads(make_cfg("extras.threads=3")) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert outputs.torch_threads(make_cfg("trainer=ddp_cpu")) is None  # an explicit OMP_NUM_THREADS wins
    with pytest.raises(ValueError, match="extras.threads=0: PyTorch.s threads must be auto or an integer >= 1"):
        outputs.torch_threads(make_cfg("extras.threads=0"))


def test_apply_extras_sets_the_thread_count(make_cfg):
    before = torch.get_num_threads()
    try:
        outputs.apply_extras(make_cfg("extras.threads=2"))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def cnn_classifier(**kwargs) -> Classifier:
    torch.manual_seed(0)
    net = CNN(input_shape=(1, 8, 8), num_classes=10, channels=[8, 16], hidden=32)
    return Classifier(net=net, num_classes=10, optimizer=partial(torch.optim.SGD, lr=0.1), **kwargs)


def test_channels_last_changes_the_memory_format_not_the_values():
    x = torch.rand(16, 1, 8, 8)
    plain, last = cnn_classifier(), cnn_classifier(channels_last=True)
    conv = [m for m in last.net.modules() if isinstance(m, torch.nn.Conv2d)][1]  # 8 -> 16 channels
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    assert torch.allclose(plain(x), last(x), atol=1e-5)
    # the checkpointed weights load into a plain model and give the same outputs
    plain.load_state_dict(last.state_dict())
    assert torch.allclose(plain(x), last(x), atol=1e-5)


COMPILED_CALLS = []


def counting_backend(graph, example_inputs):
    """A torch.compile backend that runs the graph as it is and counts its calls."""

    def run(*args):
        COMPILED_CALLS.append(1)
        return graph.forward(*args)

    return run


def test_compile_compiles_the_network_in_place_without_renaming_its_parameters():
    x = torch.rand(4, 1, 8, 8)
    plain, compiled = cnn_classifier(), cnn_classifier(compile={"backend": counting_backend})
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # no `_orig_mod.` prefix in checkpoints
    COMPILED_CALLS.clear()
    assert torch.allclose(plain(x), compiled(x), atol=1e-6)
    assert COMPILED_CALLS  # the forward pass went through torch.compile
    # so does a copy's: ddp_spawn pickles the module for its workers (torch drops a compiled module's wrapper then)
    for copy in (pickle.loads(pickle.dumps(compiled)), deepcopy(compiled)):
        COMPILED_CALLS.clear()
        assert torch.allclose(plain(x), copy(x), atol=1e-6) and COMPILED_CALLS


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_bf16_mixed_precision_trains_on_the_cpu(make_cfg, precision):
    metrics = train(
        make_cfg("model=cnn", f"trainer.precision={precision}", "trainer.max_epochs=3", "channels_last=true")
    )
    assert metrics["status"] == "completed" and metrics["test/acc"] > 0.8


def test_the_progress_bar_updates_every_n_batches(monkeypatch):
    calls = []
    monkeypatch.setattr(
        "pytorch_lightning.callbacks.RichProgressBar.on_train_batch_end",
        lambda self, trainer, module, outputs, batch, batch_idx: calls.append(batch_idx),
    )
    bar = ProgressBar(update_every=10)
    monkeypatch.setattr(ProgressBar, "total_train_batches", property(lambda self: 25))
    for i in range(25):
        bar.on_train_batch_end(None, None, None, None, i)
    assert calls == [9, 19, 24]  # every 10th batch and the last one
    with pytest.raises(
        ValueError, match=r"^update_every=0: batches between updates of the progress bar must be an integer >= 1$"
    ):
        ProgressBar(update_every=0)


def test_state_keys_are_lightnings_built_once():
    ours, theirs = EarlyStopping(monitor="val/acc", mode="max"), LightningEarlyStopping(monitor="val/acc", mode="max")
    assert ours.state_key == theirs.state_key == ours.state_key  # resumes from either class keep the callback state
    ckpt = ModelCheckpoint(monitor="val/acc", mode="max", save_last=True)
    assert ckpt.state_key == LightningModelCheckpoint(monitor="val/acc", mode="max", save_last=True).state_key
    assert ckpt.__dict__["_trainlab_state_key"] == ckpt.state_key


def test_fashion_mnist_speed_recipe_composes_and_trains_on_the_cpu(make_cfg):
    small = ["data=synthetic", "data.train_size=2048", "data.val_size=256", "data.test_size=256", "trainer=cpu"]
    cfg = make_cfg("experiment=fashion_mnist_speed", *small, "trainer.max_epochs=2", "model.width=8")
    assert cfg.channels_last and cfg.trainer.precision == "bf16-mixed" and cfg.data.batch_size == 512
    assert cfg.regularizer.label_smoothing.eps == 0.1 and list(cfg.augment) == ["hflip", "crop"]
    assert cfg.model.depth == 14
    metrics = train(cfg)
    assert metrics["status"] == "completed" and metrics["steps"] == 8  # 2048 / 512 x 2 epochs
    assert math.isfinite(metrics["train/loss"])
    # the recipe's own data and device, for the GPU run
    recipe = yaml.safe_load((ROOT / "configs/experiment/fashion_mnist_speed.yaml").read_text())
    assert {"override /trainer": "gpu"} in recipe["defaults"] and {"override /data": "fashion_mnist"} in recipe[
        "defaults"
    ]


@pytest.mark.slow
def test_a_default_run_loads_no_optional_package(tmp_path):
    """wandb, tensorboard, optuna load only when a run uses them (W&B logger, tensorboard logger, a sweep)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.argv = ['trainlab-train', 'trainer.max_epochs=1', 'extras.print_config=false',"
        " 'trainer.enable_progress_bar=false']\n"
        "from trainlab.train import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('wandb', 'tensorboard', 'tensorboardX', 'optuna') if m in sys.modules))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED []" in proc.stdout
    assert (next((tmp_path / "logs/train/runs").iterdir()) / "metrics.json").is_file()  # it did train
