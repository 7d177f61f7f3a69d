"""trainlab-eval: test a checkpoint, or an ensemble of checkpoints, on the test split and write metrics.json.

    trainlab-eval ckpt_path=logs/train/runs/<run>/checkpoints/epoch_012.ckpt
    trainlab-eval ckpt_path=[a.ckpt,b.ckpt,c.ckpt]           # ensemble: mean of the members' probabilities
    trainlab-eval ckpt_path=logs/train/multiruns/<time>      # ensemble of every job's best checkpoint

The model and data configs come from the checkpoint (trainlab stores the resolved config in every checkpoint),
so the same network is rebuilt without repeating the training overrides. ``data.*`` / ``model.*`` given here are
applied on top, e.g. ``+data.batch_size=512``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from trainlab import CONFIG_DIR
from trainlab.console import console_script, refused_as_config_error, run_job

log = logging.getLogger("trainlab")


#: what ckpt_path takes, said whenever it is refused
CKPT_PATH_TAKES = (
    "ckpt_path takes a .ckpt file written by trainlab-train, a list [a.ckpt,b.ckpt], a run directory (its best "
    "checkpoint) or a multirun directory"
)


def member_paths(ckpt_path: Any) -> list[str]:
    """The checkpoint files that ``ckpt_path`` names: one file, a list of files, a run directory (its best
    checkpoint) or a multirun directory (the best checkpoint of every job, as its metrics.json records it). Raises
    :class:`ConfigError` when it names none."""
    from trainlab.validate import ConfigError

    if isinstance(ckpt_path, (list, tuple, ListConfig)):
        if not ckpt_path:
            raise ConfigError(f"ckpt_path=[]: an empty list names no checkpoint; {CKPT_PATH_TAKES}")
        return [str(p) for p in ckpt_path]
    path = Path(str(ckpt_path))
    if path.is_dir():
        paths = []
        for metrics in sorted(path.glob("*/metrics.json"), key=lambda p: p.parent.name):
            try:
                facts = json.loads(metrics.read_text())
            except (OSError, ValueError) as err:
                raise ConfigError(
                    f"ckpt_path={str(path)!r}: {metrics} is not readable JSON ({err}; cut off?): repair or remove "
                    f"that job directory; {CKPT_PATH_TAKES}"
                ) from None
            if isinstance(facts, dict) and facts.get("best_ckpt"):
                paths.append(str(facts["best_ckpt"]))
        if not paths:
            held = sorted(p.name for p in path.glob("*.ckpt"))
            if (path / "metrics.json").is_file():  # one run's directory: its best checkpoint, as its metrics say
                return [_best_of(path)]
            if held:
                raise FileNotFoundError(
                    f"ckpt_path={str(path)!r} is a directory of checkpoints ({', '.join(held)}): give one of them, "
                    f"e.g. ckpt_path={path / held[-1]}; {CKPT_PATH_TAKES}"
                )
            raise FileNotFoundError(f"ckpt_path={str(path)!r}: no job directory with a best checkpoint in metrics.json")
        return paths
    return [str(path)]


def _best_of(run_dir: Path) -> str:
    """The best checkpoint a run's metrics.json names, else ``<run>/checkpoints/last.ckpt``."""
    try:
        best = json.loads((run_dir / "metrics.json").read_text()).get("best_ckpt")
    except (OSError, ValueError, AttributeError):
        best = None
    return str(best or run_dir / "checkpoints" / "last.ckpt")


def saved_config(path: str, trusted: bool = False) -> dict[str, Any]:
    """The config a checkpoint carries, in today's form (:func:`trainlab.checkpoints.upgraded`)."""
    from trainlab.checkpoints import load_checkpoint, upgraded

    saved = (load_checkpoint(path, trusted=trusted).get("trainlab") or {}).get("config")
    if not saved:
        raise ValueError(
            f"ckpt_path={path!r} carries no trainlab config (it was not written by trainlab-train), "
            "so the model to rebuild is unknown"
        )
    return upgraded(saved)


def read_members(cfg: DictConfig) -> tuple[list[str], list[dict[str, Any]]]:
    """Check ``cfg`` (the settings schema, as trainlab-train does) and read every checkpoint it names, before
    anything is built or written: bad input is a :class:`ConfigError` (one line, exit 2)."""
    from trainlab.errors import ConfigError
    from trainlab.validate import validate

    if OmegaConf.is_missing(cfg, "ckpt_path") or cfg.get("ckpt_path") in (None, ""):
        raise ConfigError(
            f"ckpt_path is missing: {CKPT_PATH_TAKES}, e.g. trainlab-eval ckpt_path=<run>/checkpoints/last.ckpt"
        )
    validate(cfg)  # trust_checkpoint=no, seed=abc...: refused before any checkpoint is opened
    trusted = cfg.get("trust_checkpoint") is True  # validated: a bool
    paths = member_paths(cfg.ckpt_path)
    where = (
        ""
        if isinstance(cfg.ckpt_path, ListConfig) or not Path(str(cfg.ckpt_path)).is_dir()
        else (f" (the best checkpoint of a job of ckpt_path={cfg.ckpt_path}, as its metrics.json says)")
    )
    configs = []
    for path in paths:
        try:
            configs.append(saved_config(path, trusted))
        except FileNotFoundError as err:  # exit 2 as well (trainlab.console.run_job)
            raise FileNotFoundError(f"{err}{where}") from None
        except ValueError as err:
            raise ConfigError(f"{err}{where}") from None
    from trainlab.validate import target_problems

    for path, config in zip(paths, configs, strict=True):  # the classes it was trained with must be importable here
        problems = target_problems(OmegaConf.create(config))
        if problems:
            raise ConfigError(f"ckpt_path={path}: " + "; ".join(problems))
    return paths, configs


def with_saved_config(cfg: DictConfig, saved: dict[str, Any], keys) -> DictConfig:
    """``cfg`` with the checkpoint's model/data settings, and this command line's ``data.*``/``model.*`` on top."""
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in keys:
            cfg[key] = OmegaConf.merge(saved.get(key) or {}, cfg.get(key) or {}) if saved.get(key) else None
    return cfg


def check_settings(cfg: DictConfig) -> None:
    """The settings, as trainlab-train checks them: the schema (:func:`trainlab.validate.validate`), then what goes
    to torch and Lightning (:func:`trainlab.library_settings.check_library_settings`); ConfigError when unusable."""
    from trainlab.library_settings import check_library_settings
    from trainlab.validate import validate

    validate(cfg)
    check_library_settings(cfg, groups=("trainer", "logger"))  # the checkpoint's optimizer is never stepped here


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint(s) ``cfg.ckpt_path`` names; bad settings or files are refused before anything is written."""
    paths, configs = read_members(cfg)
    if len(paths) > 1:
        return evaluate_ensemble(cfg, paths, configs)
    return evaluate_one(cfg, paths[0], configs[0])


def evaluate_one(cfg: DictConfig, path: str, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    import pytorch_lightning as pl

    from trainlab import build, checkpoints, outputs

    trusted = cfg.get("trust_checkpoint") is True
    cfg = with_saved_config(cfg, saved or saved_config(path, trusted), checkpoints.MODEL_KEYS)
    check_settings(cfg)  # this command line's data.*/model.* on top of the checkpoint's settings
    with open_dict(cfg):
        cfg.ckpt_path = path
    outputs.apply_extras(cfg, write=False)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    with refused_as_config_error():  # as trainlab-train builds: what a constructor refuses is one line, exit 2
        datamodule = build.build_datamodule(cfg)
        model = build.build_module(cfg)
        loggers = build.build_loggers(cfg)
        trainer: pl.Trainer = build.instantiate(cfg.trainer, logger=loggers or False)
    if trainer.is_global_zero:  # every check passed: the run's first file
        outputs.write_config(cfg)
    outputs.log_hyperparameters(cfg, model, loggers)

    log.info(f"Testing {cfg.ckpt_path}")
    # the training callbacks (checkpointing, early stopping) have no role in testing
    warnings.filterwarnings("ignore", message=".*callbacks used to create the checkpoint need to be provided.*")
    try:
        trainer.test(model=model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=not trusted)
    finally:
        outputs.finish_loggers(loggers)
    metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["ckpt_path"] = str(cfg.ckpt_path)
    if trainer.is_global_zero:
        outputs.write_metrics(cfg, metrics)
    return metrics


def evaluate_ensemble(cfg: DictConfig, paths: list[str], configs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Average the members' class probabilities on the test split (the lecture's model ensemble).

    Each member is rebuilt from its own checkpoint (members may differ in anything but the data). Writes
    ``test/acc_members`` (each member's accuracy), ``test/acc_members_mean``, ``test/acc_ensemble`` (= ``test/acc``),
    ``test/loss_ensemble`` (cross-entropy of the averaged probabilities) and ``ensemble_gain`` (ensemble minus mean
    member), and sends the scalars to every logger.
    """
    import torch

    from trainlab import build, checkpoints, outputs
    from trainlab.errors import ConfigError

    trusted = cfg.get("trust_checkpoint") is True
    configs = configs or [saved_config(p, trusted) for p in paths]
    data = [OmegaConf.to_container(OmegaConf.create(c["data"])) for c in configs]
    if any(d != data[0] for d in data[1:]):
        raise ConfigError(
            "ckpt_path: the ensemble's members were trained on different data settings; they must share them"
        )
    cfg = with_saved_config(cfg, configs[0], ("data",))
    check_settings(cfg)
    outputs.apply_extras(cfg, write=False)
    with refused_as_config_error():
        datamodule = build.build_datamodule(cfg)
        datamodule.setup("test")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from trainlab.ensembles import ensemble_report, test_probabilities, test_split

    x_test, y_test = test_split(datamodule, device)

    member_probs = []
    modules = []
    for saved in configs:
        with refused_as_config_error():
            modules.append(build.build_module(with_saved_config(cfg, saved, checkpoints.MODEL_KEYS)))
    outputs.write_config(cfg)  # every check passed: the run's first file
    for path, module in zip(paths, modules, strict=True):
        state = checkpoints.load_checkpoint(path, trusted=trusted)["state_dict"]
        batch_size = getattr(datamodule, "eval_batch_size", 256)
        member_probs.append(test_probabilities(module.to(device), state, x_test, batch_size))
    report = ensemble_report(member_probs, y_test)
    for path, acc in zip(paths, report["test/acc_members"], strict=True):
        log.info(f"member {path}: test/acc {acc:.4f}")
    metrics: dict[str, Any] = {"test/acc": report["test/acc_ensemble"], **report, "ckpt_path": paths}
    loggers = build.build_loggers(cfg)
    for lg in loggers:
        lg.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        lg.save()
    outputs.finish_loggers(loggers)
    outputs.write_metrics(cfg, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def main(cfg: DictConfig) -> float | None:
    return run_job(evaluate, cfg, metric="test/acc")


def cli() -> None:
    """``trainlab-eval``: checked like ``trainlab-train`` (the same code): bad input is one line and exit 2."""
    console_script("trainlab-eval", main, "eval")


if __name__ == "__main__":
    cli()
