"""Every activation, init and regularizer option trains end to end from the command line (one multirun per group)."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from .conftest import run_cli
from .test_configs import options

pytestmark = pytest.mark.slow

FEW_STEPS = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=5",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "extras.print_config=false",
    "logger=none",
]


def regularizers_by_model() -> dict[str, list[str]]:
    """Every regularizer option with a model that takes it, read from configs/ and the classes' sources: a layer
    regularizer goes to the first of cnn, resnet whose constructor has its ``argument``; any other to the CNN."""
    from trainlab import CONFIG_DIR
    from trainlab.combinations import model_source

    def target(group: str, option: str) -> str:
        node = yaml.safe_load((CONFIG_DIR / group / f"{option}.yaml").read_text())
        return (node.get(option) or node)["_target_"]

    by_model: dict[str, list[str]] = {}
    for option in options("regularizer"):
        argument = model_source(target("regularizer", option)).attribute("argument")
        takes = {m: model_source(target("model", m)).params for m in ("cnn", "resnet")}
        model = next(m for m, params in takes.items() if argument is None or params is None or argument in params)
        by_model.setdefault(model, []).append(option)
    return by_model


REGULARIZERS = regularizers_by_model()
SWEEPS = {
    "activation": [f"activation={','.join(options('activation'))}", "model=mlp"],
    "activation-cnn": [f"activation={','.join(options('activation'))}", "model=cnn", "model.channels=[8]"],
    "activation-resnet": [
        f"activation={','.join(options('activation'))}",
        "model=resnet",
        "model.depth=8",
        "model.width=8",
    ],
    "init": [f"init={','.join(options('init'))}", "activation=tanh"],
    "regularizer": [f"regularizer={','.join(REGULARIZERS['cnn'])}", "model=cnn", "model.channels=[8,8]"],
    "regularizer-resnet": [
        f"regularizer={','.join(REGULARIZERS['resnet'])},dropout",
        "model=resnet",
        "model.depth=14",
        "model.width=8",
    ],
    "regularizer-combined": ["regularizer=[l2,dropout],[elastic_net,dropconnect]", "activation=maxout"],
    "regularizer-mixing": [
        "regularizer=[mixup,cutmix,label_smoothing]",
        "model=cnn",
        "model.channels=[8]",
    ],
    "preprocess": [f"preprocess={','.join(options('preprocess'))}"],
    "ensemble": [f"ensemble={','.join(o for o in options('ensemble') if o != 'snapshot')}"],
    "ensemble-snapshot": ["ensemble=snapshot", "ensemble.cycles=1"],  # one epoch: one cycle
    "augment": [
        f"augment={','.join(options('augment')).replace('color_jitter,', '')},[hflip,crop,cutout]",
        "model=cnn",
        "model.channels=[8]",
    ],
}


def sweep_size(values: str) -> int:
    """How many jobs `key=a,[b,c],d` makes: the commas outside brackets, plus one."""
    depth, count = 0, 1
    for ch in values:
        depth += (ch == "[") - (ch == "]")
        count += ch == "," and depth == 0
    return count


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
def test_every_option_trains_from_the_cli(tmp_path, sweep):
    run_cli(["trainlab-train", "-m", *SWEEPS[sweep], *FEW_STEPS], cwd=tmp_path, timeout=600)
    (sweep_dir,) = (tmp_path / "logs/train/multiruns").iterdir()
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    swept = SWEEPS[sweep][0].split("=", 1)[1]
    expected = sweep_size(swept)
    assert len(jobs) == expected
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["steps"] == 5, job
        assert math.isfinite(metrics["train/loss"]) and 0.0 <= metrics["test/acc"] <= 1.0
        resolved = yaml.safe_load((job / "config.yaml").read_text())
        group = sweep.split("-")[0]
        assert resolved.get(group), f"{job}: no {group} in the resolved config"
