"""The lecture's recipe for choosing hyperparameters, step 1: check the initial loss.

With small random weights a softmax classifier over C classes predicts about 1/C for every class, so its
cross-entropy starts near ln(C) (2.303 for 10 classes). A start far from it means a bug or a bad initialisation
(too large weights, a wrong loss or labels) and is worth finding before any tuning. Measured with the data loss
only (no weight penalty), in eval mode (no dropout noise), on the first ``batches`` training batches, without
augmentation.

* ``trainlab-train recipe=initial_loss`` runs only this check and writes ``initial_loss.json`` (``loss``,
  ``expected``, ``ok``); it exits with status 1 and an explanation when the loss is off by more than ``tolerance``
  (a fraction of ln C).
* Every training run does the same check at its start (:class:`InitialLossCheck`, part of ``callbacks=default``),
  logs ``train/initial_loss`` and warns when it is off.
"""

from __future__ import annotations

import abc
import logging
import math
from typing import Annotated, Any, Literal

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from trainlab.settings import Setting, checked

log = logging.getLogger("trainlab")

#: ``recipe.batches`` (and ``callbacks.initial_loss.batches``)
Batches = Annotated[int, Setting("batches of the initial-loss check", low=1)]
Tolerance = Annotated[
    float, Setting("how far the initial loss may be from ln C, as a share of it", low=0, low_open=True)
]


@torch.no_grad()
def initial_loss(module, datamodule, batches: int = 5, tolerance: float = 0.25) -> dict[str, Any]:
    """Mean data loss of ``module`` on the first ``batches`` training batches, against ln(C)."""
    was_training = module.training
    module.eval()
    losses = []
    for i, (x, y) in enumerate(datamodule.train_dataloader()):
        if i >= batches:
            break
        x, y = x.to(module.device), y.to(module.device)
        losses.append(module.loss(module(x), y).item())
    module.train(was_training)
    loss = sum(losses) / len(losses)
    expected = math.log(module.num_classes)
    ok = abs(loss - expected) <= tolerance * expected
    verdict = f"initial loss {loss:.4f}, expected about ln({module.num_classes}) = {expected:.4f}: " + (
        "as expected" if ok else _advice(loss, expected, getattr(module, "config", None))
    )
    return {"loss": loss, "expected": expected, "ok": ok, "batches": len(losses), "message": verdict}


#: the init each activation is usually paired with (the lecture: Xavier for tanh, He/Kaiming for ReLU; SELU: LeCun)
USUAL_INIT = {"tanh": "xavier", "sigmoid": "xavier", "selu": "lecun"}


def _advice(loss: float, expected: float, config: dict[str, Any] | None = None) -> str:
    """What to try, from the run's own settings (``config``: the module's ``init`` and ``activation``): an init is
    suggested only when the run does not use it already."""
    if not math.isfinite(loss):
        return "not finite: check the data (NaN inputs?) and the initialisation"
    if loss > expected:
        config = config or {}
        init, activation = config.get("init") or {}, config.get("activation") or {}
        act = activation.get("name") or "relu"
        scheme = init.get("scheme") or "default"
        if scheme == "default" and activation.get("preferred_init"):
            scheme = activation["preferred_init"]  # what the run really uses (trainlab.build.build_single_net)
        usual = USUAL_INIT.get(act, "kaiming")
        knobs = [f"init.{k}={init[k]}" for k in ("std", "gain") if init.get(k) is not None]
        used = f"init={scheme}" + (f" ({', '.join(knobs)})" if knobs else "")
        if scheme == usual:
            smaller = "a smaller init.gain" if init.get("gain") is not None else "smaller weights (init.gain < 1)"
            return (
                f"too high, although {used} is already the usual init for activation={act}: check the inputs' scale "
                f"(preprocess=normalize) and the labels, or try {smaller}"
            )
        return (
            f"too high: the initial weights are too large with {used} and activation={act} "
            f"(try init={usual}, the usual init for activation={act}) or the labels are wrong"
        )
    return "too low: the labels may leak into the inputs, or the loss is not a cross-entropy over the classes"


class InitialLossCheck(Callback):
    """At the start of a fresh training run, measure the initial loss and warn when it is far from ln(C)."""

    @checked
    def __init__(self, batches: Batches = 5, tolerance: Tolerance = 0.25) -> None:
        self.batches, self.tolerance = batches, tolerance

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        resuming = trainer.global_step > 0 or trainer.ckpt_path is not None  # the weights are not restored yet
        if resuming or trainer.datamodule is None or not hasattr(pl_module, "num_classes"):
            return  # a resumed run is past its initial loss
        result = initial_loss(pl_module, trainer.datamodule, self.batches, self.tolerance)
        for logger in trainer.loggers:
            logger.log_metrics({"train/initial_loss": result["loss"]}, step=0)
        (log.info if result["ok"] else log.warning)(result["message"])


# ---------------------------------------------------------------------------------------------------------------
# Step 2: overfit a small sample
# ---------------------------------------------------------------------------------------------------------------
def overfit_small_sample(
    module,
    datamodule,
    samples: int = 128,
    max_epochs: int = 300,
    target_acc: float = 1.0,
) -> dict[str, Any]:
    """Train ``module`` on the first ``samples`` training examples until it classifies all of them correctly.

    The lecture's step 2: a model that cannot reach 100% training accuracy on a few batches, with regularization
    off, has a bug, a learning rate far off, or a bad initialisation. Mini-batches of the data module's batch size,
    the module's own optimizer (no schedule), no augmentation; the accuracy is measured in eval mode on the whole
    sample after every epoch. Like Lightning's ``overfit_batches`` (``debug=overfit``), but it stops as soon as the
    target is reached and diagnoses a failure:

    * loss not finite or rising: the learning rate is too high (or the init is bad);
    * loss flat (fell by less than 10%): the learning rate is too low (or the init is bad);
    * loss fell but not to 100%: train longer (``recipe.max_epochs``) or use a bigger model.
    """
    x_all, y_all = datamodule.splits["train"]
    x, y = x_all[:samples].to(module.device), y_all[:samples].to(module.device)
    batch_size = min(int(datamodule.batch_size), len(x))
    optimizer = module.optimizer_factory(params=[p for p in module.parameters() if p.requires_grad])
    lr = optimizer.param_groups[0]["lr"]

    def evaluate() -> tuple[float, float]:
        module.eval()
        with torch.no_grad():
            logits = module(x)
            loss, acc = module.loss(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()
        module.train()
        return loss, acc

    loss0, acc = evaluate()
    losses, accs, epochs = [loss0], [acc], 0
    module.train()
    while acc < target_acc and epochs < max_epochs and math.isfinite(losses[-1]):
        for start in range(0, len(x), batch_size):
            loss = module.loss(module(x[start : start + batch_size]), y[start : start + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epochs += 1
        loss, acc = evaluate()
        losses.append(loss)
        accs.append(acc)
    ok = acc >= target_acc
    final = losses[-1]
    if ok:
        message = f"reached {acc:.0%} training accuracy on {len(x)} samples in {epochs} epochs: the model can learn"
    elif not math.isfinite(final) or final > 1.5 * loss0:
        message = (
            f"the loss exploded (from {loss0:.3g} to {final:.3g}) and training accuracy is {acc:.1%} after "
            f"{epochs} epochs: the learning rate is too high (optimizer.lr={lr:.3g}; try {lr / 10:.3g}) "
            "or the initialisation is bad"
        )
    elif final > 0.9 * loss0:
        message = (
            f"the loss is flat (from {loss0:.3g} to {final:.3g}) and training accuracy is {acc:.1%} after {epochs} "
            f"epochs: the learning rate is too low (optimizer.lr={lr:.3g}; try {lr * 10:.3g}) "
            "or the initialisation is bad"
        )
    else:
        message = (
            f"the loss fell (from {loss0:.3g} to {final:.3g}) but training accuracy is {acc:.1%} after {epochs} "
            "epochs: train longer (recipe.max_epochs) or use a bigger model"
        )
    return {
        "ok": ok,
        "train_acc": acc,
        "epochs": epochs,
        "samples": len(x),
        "lr": lr,
        "loss_start": loss0,
        "loss_end": final,
        "losses": losses,
        "train_accs": accs,
        "message": message,
    }


# ---------------------------------------------------------------------------------------------------------------
# Step 3: learning-rate range test
# ---------------------------------------------------------------------------------------------------------------
def lr_find(
    trainer,
    module,
    datamodule,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: str = "exponential",
) -> tuple[dict[str, Any], Any]:
    """The learning-rate range test (Smith 2017, "Cyclical learning rates", section 3.3), run by Lightning's tuner.

    The learning rate grows from ``min_lr`` to ``max_lr`` over ``num_training`` optimizer steps on the training
    data; the loss (exponentially smoothed, as Lightning records it) is kept for every step. The suggestion is
    Lightning's: the learning rate where the smoothed loss falls fastest. The search stops early once the loss is
    4x its best. Returns the results and Lightning's ``_LRFinder`` (for its plot).
    """
    from pytorch_lightning.tuner import Tuner

    finder = Tuner(trainer).lr_find(
        module,
        datamodule=datamodule,
        min_lr=min_lr,
        max_lr=max_lr,
        num_training=num_training,
        mode=mode,
        update_attr=False,
    )
    lrs = [float(v) for v in finder.results["lr"]]
    losses = [float(v) for v in finder.results["loss"]]
    suggested = finder.suggestion() if len(losses) > 11 else None
    # Lightning's smoothing under-reads its first points (its bias correction counts one step too many)
    finite = [(lr, loss) for lr, loss in list(zip(lrs, losses, strict=True))[10:] if math.isfinite(loss)]
    lowest = min(finite, key=lambda p: p[1])[0] if finite else None
    result = {
        "suggested_lr": suggested,
        "lowest_loss_lr": lowest,
        "min_lr": min_lr,
        "max_lr": max_lr,
        "steps": len(losses),
        "stopped_early": len(losses) < num_training,
        "lrs": lrs,
        "losses": losses,
    }
    if suggested is None:
        result["message"] = "no suggestion: too few steps before the loss diverged; lower recipe.max_lr"
    else:
        result["message"] = (
            f"suggested learning rate {suggested:.3g} (steepest fall of the loss); the loss was lowest at "
            f"{lowest:.3g}. Try optimizer.lr={suggested:.3g}, then search around it: -m hparams_search=coarse"
        )
    return result, finder


def plot_lr_find(result: dict[str, Any], path) -> None:
    """Loss against learning rate on a log axis, the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    # the first 10 points are left out, as in the suggestion: Lightning's smoothing under-reads them
    ax.plot(result["lrs"][10:], result["losses"][10:], color="C0")
    if result.get("suggested_lr"):
        ax.axvline(result["suggested_lr"], color="C3", ls="--", label=f"suggested {result['suggested_lr']:.2g}")
        ax.legend()
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (smoothed)", title="learning-rate range test")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# The steps as config choices: `recipe=initial_loss|overfit|lr_find` instantiates one of these (`_target_`)
# ---------------------------------------------------------------------------------------------------------------
class RecipeStep(abc.ABC):
    """One step of the recipe, selected with ``recipe=<name>`` (``configs/recipe/<name>.yaml`` names the class).

    :meth:`config` says what the step measures (by default regularization off: every regularizer, the
    augmentation and the optimizer's weight decay, as the lecture says; in-run ensembles are always dropped, one
    model is checked); :meth:`measure` runs it and returns a dict with ``ok`` and ``message``, written to
    ``<name>.json``. A new step is a subclass and a YAML.
    """

    name = "step"

    def config(self, cfg):
        """A copy of ``cfg`` with regularization, augmentation, weight decay and the ensemble off."""
        from omegaconf import OmegaConf, open_dict

        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        with open_dict(cfg):
            cfg.ensemble = None
            cfg.regularizer = {}
            cfg.augment = {}
            if "weight_decay" in cfg.optimizer:
                cfg.optimizer.weight_decay = 0.0
        return cfg

    @abc.abstractmethod
    def measure(self, module, datamodule, cfg, out_dir) -> dict[str, Any]:
        """Run the step on ``module`` and ``datamodule``: a dict with ``ok`` and ``message`` (and the figures)."""


class InitialLoss(RecipeStep):
    """Step 1: the untrained model's loss on ``batches`` batches against ln(C) (:func:`initial_loss`)."""

    name = "initial_loss"

    @checked
    def __init__(self, batches: Batches = 5, tolerance: Tolerance = 0.25) -> None:
        self.batches, self.tolerance = int(batches), float(tolerance)

    def measure(self, module, datamodule, cfg, out_dir) -> dict[str, Any]:
        return initial_loss(module, datamodule, self.batches, self.tolerance)


class Overfit(RecipeStep):
    """Step 2: train on ``samples`` examples until ``target_acc`` (:func:`overfit_small_sample`)."""

    name = "overfit"

    @checked
    def __init__(
        self,
        samples: Annotated[int, Setting("images of the overfitting sample", low=1)] = 128,
        max_epochs: Annotated[int, Setting("epochs of the overfitting check", low=1)] = 300,
        target_acc: Annotated[
            float, Setting("training accuracy the sample must reach", low=0, high=1, low_open=True)
        ] = 1.0,
    ) -> None:
        self.samples, self.max_epochs, self.target_acc = int(samples), int(max_epochs), float(target_acc)

    def measure(self, module, datamodule, cfg, out_dir) -> dict[str, Any]:
        return overfit_small_sample(module, datamodule, self.samples, self.max_epochs, self.target_acc)


class LrFind(RecipeStep):
    """Step 3: the learning-rate range test (:func:`lr_find`), with the model as configured and the optimizer's
    weight decay set to ``weight_decay`` ("small weight decay"); writes ``lr_find.png`` too."""

    name = "lr_find"

    @checked
    def __init__(
        self,
        min_lr: Annotated[float, Setting("lowest learning rate of the range test", low=0, low_open=True)] = 1e-6,
        # above min_lr too: a rule of two settings (trainlab.combinations), not declared here
        max_lr: Annotated[float, Setting("highest learning rate of the range test", low=0, low_open=True)] = 1.0,
        num_training: Annotated[int, Setting("steps of the learning-rate range test", low=2)] = 100,
        mode: Annotated[Literal["exponential", "linear"], Setting("how the range test's learning rate grows")] = (
            "exponential"
        ),
        weight_decay: Annotated[float, Setting("weight decay during the range test", low=0)] | None = 1e-4,
    ) -> None:
        self.min_lr, self.max_lr, self.num_training, self.mode = float(min_lr), float(max_lr), int(num_training), mode
        self.weight_decay = weight_decay

    def config(self, cfg):
        from omegaconf import OmegaConf, open_dict

        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        with open_dict(cfg):
            cfg.ensemble = None
            if self.weight_decay is not None and "weight_decay" in cfg.optimizer:
                cfg.optimizer.weight_decay = self.weight_decay
        return cfg

    def measure(self, module, datamodule, cfg, out_dir) -> dict[str, Any]:
        from trainlab.build import instantiate

        trainer = instantiate(
            cfg.trainer, callbacks=[], logger=False, enable_checkpointing=False, enable_model_summary=False
        )
        module.divergence_guard = False  # the range test drives the loss to divergence on purpose
        result, _ = lr_find(
            trainer, module, datamodule, self.min_lr, self.max_lr, num_training=self.num_training, mode=self.mode
        )
        result["weight_decay"] = cfg.optimizer.get("weight_decay")
        plot_lr_find(result, out_dir / "lr_find.png")
        result["ok"] = result["suggested_lr"] is not None
        return result


def run(cfg) -> dict[str, Any]:
    """``recipe=<step>``: build the model the step measures, run it, write ``<step>.json``.

    Raises :class:`~trainlab.errors.RecipeCheckFailed` (exit status 1) with the message saying which way the check
    failed.
    """
    import json
    from pathlib import Path

    from trainlab import build, outputs
    from trainlab.console import refused_as_config_error
    from trainlab.errors import RecipeCheckFailed

    with refused_as_config_error():  # as trainlab-train builds: what a constructor refuses is one line, exit 2
        step: RecipeStep = build.instantiate(cfg.recipe)
        cfg = step.config(cfg)
        datamodule = build.build_datamodule(cfg)
        model = build.build_module(cfg)
        datamodule.setup("fit")
    out_dir = Path(cfg.paths.output_dir)
    outputs.write_config(cfg)  # the settings, the data and the model are usable: the first file of the run
    if hasattr(model.preprocess, "fit"):
        model.preprocess.fit(datamodule.train_images())
    result = step.measure(model, datamodule, cfg, out_dir)
    path = out_dir / f"{step.name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    (log.info if result["ok"] else log.error)(f"{step.name}: {result['message']} ({path})")
    if not result["ok"]:
        raise RecipeCheckFailed(result["message"])
    return result
