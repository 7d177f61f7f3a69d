"""Every option of every config group composes, and what it names can be instantiated."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from trainlab import CONFIG_DIR, build

from .conftest import require_fashion_mnist


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def test_every_group_the_template_promises_exists():
    expected = {
        "data": {"digits"},
        "model": {"mlp", "cnn"},
        "optimizer": {"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"},
        "scheduler": {"none", "step", "cosine", "onecycle", "plateau"},
        "callbacks": {"default"},
        "logger": {"csv", "wandb", "tensorboard", "many", "none"},
        "trainer": {"default", "cpu", "gpu", "ddp", "ddp_cpu"},
        "paths": {"default"},
        "hydra": {"default"},
        "debug": {"fdr", "limit", "overfit", "profiler"},
        "extras": {"default"},
        "activation": {"sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu", "maxout", "gelu", "silu"},
        "init": {"default", "zeros", "small_random", "xavier", "glorot", "kaiming", "lecun", "orthogonal"},
        "ensemble": {"independent", "snapshot", "ema", "swa"},
        "recipe": {"initial_loss"},
        "preprocess": {"none", "zero_center", "normalize", "pca", "pca_whiten", "zca_whiten"},
        "augment": {"hflip", "vflip", "crop", "scale", "color_jitter", "translate", "rotate", "cutout"},
        "regularizer": {
            "l1",
            "l2",
            "elastic_net",
            "dropout",
            "alpha_dropout",
            "dropconnect",
            "fractional_pool",
            "stochastic_depth",
        },
    }
    for group, names in expected.items():
        assert names <= set(options(group)), f"configs/{group} lacks {names - set(options(group))}"
    assert options("experiment"), "configs/experiment has no example"


#: data sets that need a download (tested on tiny files in their on-disk format in tests/test_datasets.py)
DOWNLOADED = {"mnist", "cifar10", "cifar100"}


@pytest.mark.parametrize("name", options("data"))
def test_data_option_instantiates_with_its_declared_shape(make_cfg, name):
    cfg = make_cfg(f"data={name}")
    dm = build.build_datamodule(cfg)
    assert (dm.num_classes, tuple(dm.input_shape)) == (cfg.data.num_classes, tuple(cfg.data.input_shape))
    if name in DOWNLOADED:
        return
    if name == "fashion_mnist":
        require_fashion_mnist()
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert tuple(x.shape[1:]) == tuple(cfg.data.input_shape)
    assert int(y.max()) < cfg.data.num_classes
    assert len(x) == cfg.data.batch_size


@pytest.mark.parametrize("name", options("model"))
def test_model_option_maps_a_batch_to_logits(make_cfg, name):
    cfg = make_cfg(f"model={name}")
    module = build.build_module(cfg)
    x = torch.zeros(3, *cfg.data.input_shape)
    assert module(x).shape == (3, cfg.data.num_classes)


@pytest.mark.parametrize("name", options("optimizer"))
def test_optimizer_option_builds_the_named_optimizer(make_cfg, name):
    cfg = make_cfg(f"optimizer={name}")
    opt = hydra.utils.instantiate(cfg.optimizer)(params=[torch.nn.Parameter(torch.zeros(2))])
    expected = {
        "sgd": "SGD",
        "momentum": "SGD",
        "nesterov": "SGD",
        "adam": "Adam",
        "adamw": "AdamW",
        "rmsprop": "RMSprop",
    }[name]
    assert type(opt).__name__ == expected
    group = opt.param_groups[0]
    assert group["lr"] == cfg.optimizer.lr
    if name == "momentum":
        assert group["momentum"] == 0.9 and not group["nesterov"]
    if name == "nesterov":
        assert group["momentum"] == 0.9 and group["nesterov"]
    if name == "sgd":
        assert group["momentum"] == 0.0


@pytest.mark.parametrize("name", options("scheduler"))
def test_scheduler_option_builds_with_its_interval(make_cfg, name):
    cfg = make_cfg(f"scheduler={name}")
    module = build.build_module(cfg)
    if name == "none":
        assert module.scheduler_factory is None
        return
    sched = module.scheduler_factory(
        optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
        **({"total_steps": 10} if name == "onecycle" else {}),
    )
    expected = {
        "step": "StepLR",
        "cosine": "CosineAnnealingLR",
        "onecycle": "OneCycleLR",
        "plateau": "ReduceLROnPlateau",
    }[name]
    assert type(sched).__name__ == expected
    assert module.scheduler_interval == ("step" if name == "onecycle" else "epoch")
    assert module.scheduler_monitor == ("val/loss" if name == "plateau" else None)


@pytest.mark.parametrize("name", options("callbacks"))
def test_callbacks_option_instantiates(make_cfg, name):
    cfg = make_cfg(f"callbacks={name}", "trainer.enable_progress_bar=true", "trainer.enable_model_summary=true")
    callbacks = build.build_callbacks(cfg)
    names = {type(c).__name__ for c in callbacks}
    if name == "default":
        assert names == {
            "ModelCheckpoint",
            "EarlyStopping",
            "LearningRateMonitor",
            "ProgressBar",
            "RichModelSummary",
            "InitialLossCheck",
        }
        ckpt = next(c for c in callbacks if type(c).__name__ == "ModelCheckpoint")
        assert ckpt.monitor == "val/acc" and ckpt.mode == "max" and ckpt.save_last and ckpt.save_top_k == 1
    elif name == "activation_stats":  # an extra for the list: callbacks=[default,activation_stats]
        assert names == {"ActivationStats"}
    else:
        assert names == set()


def test_callbacks_that_contradict_the_trainer_are_dropped(make_cfg):
    cfg = make_cfg("logger=none")  # QUIET turns off the progress bar and the summary
    names = {type(c).__name__ for c in build.build_callbacks(cfg)}
    assert names == {"ModelCheckpoint", "EarlyStopping", "InitialLossCheck"}


def test_a_callback_can_be_removed_by_name(make_cfg):
    cfg = make_cfg("callbacks.early_stopping=null")
    assert "EarlyStopping" not in {type(c).__name__ for c in build.build_callbacks(cfg)}


@pytest.mark.parametrize("name", options("logger"))
def test_logger_option_instantiates(make_cfg, name, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = make_cfg(f"logger={name}")
    loggers = build.build_loggers(cfg)
    expected = {
        "csv": ["CSVLogger"],
        "tensorboard": ["TensorBoardLogger"],
        "wandb": ["WandbLogger"],
        "many": ["CSVLogger", "TensorBoardLogger", "WandbLogger"],
        "none": [],
    }[name]
    assert sorted(type(lg).__name__ for lg in loggers) == expected
    for lg in loggers:  # every logger writes inside the run directory
        assert str(lg.save_dir).startswith(str(cfg.paths.output_dir))


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_option_composes(make_cfg, name):
    cfg = make_cfg(f"trainer={name}")
    expected = {
        "default": ("cpu", 1, None),  # the tests force the CPU; `auto` otherwise
        "cpu": ("cpu", 1, None),
        "gpu": ("cpu", 1, None),
        "ddp": ("cpu", 2, "ddp"),
        "ddp_cpu": ("cpu", 2, "ddp"),
    }[name]
    assert (cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.get("strategy")) == expected
    if name in ("default", "cpu"):
        trainer = hydra.utils.instantiate(cfg.trainer, logger=False)
        assert trainer.max_epochs == cfg.trainer.max_epochs


def test_gpu_trainers_ask_for_the_gpu(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for name in ("gpu", "ddp"):
            cfg = compose("train", overrides=[f"trainer={name}"])
            assert cfg.trainer.accelerator == "gpu"
        assert compose("train", overrides=["trainer=ddp"]).trainer.sync_batchnorm is True
        assert compose("train", overrides=["trainer=ddp_cpu"]).trainer.accelerator == "cpu"


@pytest.mark.parametrize("name", options("debug"))
def test_debug_option_composes_into_a_debug_run(make_cfg, name):
    cfg = make_cfg(f"debug={name}")
    assert cfg.task_name == "debug"
    assert cfg.trainer.max_epochs >= 1 and cfg.trainer.accelerator == "cpu"
    assert not cfg.logger
    key = {
        "fdr": "fast_dev_run",
        "limit": "limit_train_batches",
        "overfit": "overfit_batches",
        "profiler": "profiler",
        "default": "detect_anomaly",
    }[name]
    assert cfg.trainer.get(key)


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_option_composes_and_builds(make_cfg, name):
    cfg = make_cfg(f"experiment={name}")
    module = build.build_module(cfg)
    assert module(torch.zeros(2, *cfg.data.input_shape)).shape == (2, cfg.data.num_classes)


def test_eval_config_requires_a_checkpoint(make_cfg):
    cfg = make_cfg(config_name="eval")
    assert OmegaConf.is_missing(cfg, "ckpt_path")
    assert cfg.task_name == "eval"


def test_paths_put_the_run_under_the_log_dir(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True)
    assert cfg.hydra.run.dir.startswith("./logs/train/runs/")
    assert cfg.hydra.sweep.dir.startswith("./logs/train/multiruns/")
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "${hydra.job.num}"


@pytest.mark.parametrize("name", options("activation"))
def test_activation_option_reaches_the_network(make_cfg, name):
    from trainlab.activations import Activation

    cfg = make_cfg(f"activation={name}")
    act = hydra.utils.instantiate(cfg.activation)
    assert isinstance(act, Activation) and act.name == name
    net = build.build_net(cfg)
    assert type(act()).__name__ in {type(m).__name__ for m in net.modules()}


@pytest.mark.parametrize("name", options("init"))
def test_init_option_instantiates_its_scheme(make_cfg, name):
    cfg = make_cfg(f"init={name}")
    assert hydra.utils.instantiate(cfg.init).scheme == name
    net = build.build_net(cfg)
    assert torch.isfinite(net(torch.rand(2, *cfg.data.input_shape))).all()


@pytest.mark.parametrize("name", options("regularizer"))
def test_regularizer_option_composes_under_its_own_key(make_cfg, name):
    model = {"fractional_pool": "cnn", "stochastic_depth": "resnet"}.get(name, "mlp")
    cfg = make_cfg(f"model={model}", f"regularizer=[{name}]")
    assert list(cfg.regularizer) == [name]
    module = build.build_module(cfg)
    assert module(torch.rand(2, *cfg.data.input_shape)).shape == (2, cfg.data.num_classes)


def test_regularizers_combine_as_a_list(make_cfg):
    cfg = make_cfg("regularizer=[l2,dropout]", "regularizer.dropout.p=0.2", "regularizer.l2.weight=0.001")
    assert dict(cfg.regularizer) == {
        "l2": {
            "_target_": "trainlab.regularizers.penalties.L2",
            "weight": 0.001,
            "include_bias": False,
            "include_norm": False,
        },
        "dropout": {"_target_": "trainlab.regularizers.dropout.Dropout", "p": 0.2},
    }
    assert "regularizer" not in make_cfg()  # none by default
