"""A checkpoint written before techniques were ``_target_`` objects (``regularizer: {dropout: {p: 0.5}}``,
``ensemble: {kind: snapshot}``) is read in today's form (:func:`trainlab.checkpoints.upgraded`): the option's class
and defaults from ``configs/``, the checkpoint's own values on top. The options are read from ``configs/``."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from trainlab import CONFIG_DIR
from trainlab.checkpoints import MODEL_KEYS, _container, upgraded

from .conftest import read_metrics, run_cli

OPTIONS = {group: sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")) for group in ("augment", "regularizer")}
ENSEMBLES = sorted(p.stem for p in (CONFIG_DIR / "ensemble").glob("*.yaml"))


def saved(make_cfg, *overrides: str) -> dict:
    """What a checkpoint of ``trainlab-train <overrides>`` carries (build.py: the resolved MODEL_KEYS)."""
    cfg = make_cfg(*overrides)
    return {k: _container(cfg.get(k)) for k in MODEL_KEYS}


def old_form(config: dict) -> dict:
    """``config`` as a checkpoint of before 2026-11-30 carried it: technique entries without ``_target_``."""
    old = {**config}
    for group in OPTIONS:
        entries = config.get(group) or {}
        old[group] = {name: {k: v for k, v in node.items() if k != "_target_"} for name, node in entries.items()}
    return old


@pytest.mark.parametrize("group", sorted(OPTIONS))
def test_every_technique_entry_of_an_old_checkpoint_gets_its_class_back(make_cfg, group) -> None:
    options = [o for o in OPTIONS[group] if not (group == "augment" and o == "color_jitter")]  # colour: RGB only
    new = saved(make_cfg, f"{group}=[{','.join(options)}]")
    assert sorted(new[group]) == sorted(options) and all("_target_" in n for n in new[group].values())
    assert upgraded(old_form(new))[group] == new[group]  # class, defaults, input_shape: all as today


@pytest.mark.parametrize("option", ENSEMBLES)
def test_an_old_ensemble_kind_becomes_its_class(make_cfg, option) -> None:
    new = saved(make_cfg, f"ensemble={option}", "trainer.max_epochs=6")
    yaml_node = OmegaConf.load(CONFIG_DIR / "ensemble" / f"{option}.yaml").ensemble
    own = {k: v for k, v in new["ensemble"].items() if k != "_target_" and not OmegaConf.is_interpolation(yaml_node, k)}
    got = upgraded({**new, "ensemble": {"kind": option, **own}})["ensemble"]
    assert got["_target_"] == new["ensemble"]["_target_"]
    for key, value in new["ensemble"].items():  # its own values kept; what a checkpoint never carried is unset
        assert got[key] == (value if key in own or key == "_target_" else None), key


def test_a_config_of_today_is_left_as_it_is(make_cfg) -> None:
    new = saved(make_cfg, "augment=[hflip,crop]", "regularizer=[dropout,l2]", "ensemble=snapshot")
    assert upgraded(new) == new


@pytest.mark.slow
def test_trainlab_eval_tests_an_old_checkpoint_as_it_tested_when_new(tmp_path) -> None:
    """A dropout + flip model trained today, its checkpoint rewritten in the old form: ``trainlab-eval`` (defaults
    on) gives the same test accuracy and loss for both files."""
    run_cli(["trainlab-train", "regularizer=[dropout]", "augment=[hflip]", "trainer.max_epochs=2"], cwd=tmp_path)
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    best = read_metrics(run_dir)["best_ckpt"]
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    checkpoint["trainlab"]["config"] = old_form(checkpoint["trainlab"]["config"])
    assert "_target_" not in checkpoint["trainlab"]["config"]["regularizer"]["dropout"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    results = []
    for i, path in enumerate((best, old)):
        (tmp_path / f"eval{i}").mkdir()
        run_cli(["trainlab-eval", f"ckpt_path={path}"], cwd=tmp_path / f"eval{i}")
        (eval_dir,) = (tmp_path / f"eval{i}" / "logs" / "eval" / "runs").iterdir()
        results.append(read_metrics(eval_dir))
    assert results[1]["test/acc"] == pytest.approx(results[0]["test/acc"], abs=1e-7)
    assert results[1]["test/loss"] == pytest.approx(results[0]["test/loss"], rel=1e-6)
