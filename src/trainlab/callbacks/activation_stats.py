"""Per-layer activation statistics and update-to-weight ratios: the lecture's diagnostics for initialisation.

``trainlab-train callbacks=[default,activation_stats]`` adds :class:`ActivationStats` to a run. It measures every
hidden layer (the output of every activation module of the network) at initialisation and at the end of training
(optionally also every ``every_n_epochs`` epochs), and the update-to-weight ratio of every weight layer every
``update_ratio_every_n_steps`` optimizer steps. It writes, in the run directory:

* ``activation_stats.json``: a list with one entry per hidden layer and measurement::

      {"layer": "layer_1", "step": 0, "mean": ..., "std": ..., "dead_fraction": ..., "saturated_fraction": ...,
       "phase": "init", "epoch": 0, "module": "layers.2", "activation": "tanh", "samples": 16384,
       "dead_unit_fraction": ..., "histogram": {"edges": [...], "counts": [...], "outside": 0}}

  ``layer``: ``layer_1`` .. ``layer_N`` in the order the network defines its activation modules (for the MLP and
  the CNN the order of the forward pass); ``module``: the activation module's qualified name inside the network.
  ``phase``: ``init`` (step 0), ``epoch`` (``every_n_epochs``), ``end`` (the last step), or ``resume`` (the start
  of a resumed run). ``mean`` and ``std``: over every element of the layer's output for the measured samples
  (samples x units, and positions for convolutions); ``std`` is the population standard deviation (ddof 0).
  ``dead_fraction``: fraction of elements exactly 0. ``dead_unit_fraction``: fraction of units (features,
  channels) that are 0 for every measured sample, the lecture's "dead ReLU". ``saturated_fraction``: tanh:
  |a| > 0.99; sigmoid: a < 0.01 or a > 0.99; ``null`` for every other activation, which does not saturate on both
  sides (the ReLU family's analogue is ``dead_fraction``). ``histogram``: ``counts`` of the values in the
  ``bins`` intervals between ``edges`` (so figures can be re-drawn from the file) and ``outside``: values outside
  the range, left out of the counts.
* ``update_ratio.json``: a list of ``{"layer", "module", "step", "ratio"}``: ratio = ||w_after - w_before|| /
  ||w_before|| (Frobenius norms) of one optimizer step, for every Linear/Conv weight; ``layer_1`` .. ``layer_K``
  in the network's order, so in an MLP ``layer_k`` (k <= N) is the weight feeding hidden layer k and
  ``layer_{N+1}`` is the output layer. ``ratio`` is ``null`` for a weight that is all zeros before the step.
* ``activation_stats.png``: per-layer histograms (one column per layer, one row per measurement, titled with
  mean and std), the per-layer std and the update ratios against steps (see :mod:`trainlab.activation_figures`).

Every logger gets the scalars ``activations/<layer>/{mean,std,dead_fraction,saturated_fraction}`` at the step of
each measurement and ``update_ratio/<layer>`` at each measured step; a W&B logger also gets a histogram per layer,
``activations/<layer>``.

What to look for (the lecture's per-layer histograms of a 10-layer tanh net; Glorot & Bengio 2010, "Understanding
the difficulty of training deep feedforward neural networks", whose figures follow the per-layer activation
distributions and saturation under the standard and the normalised initialisation; He et al. 2015, "Delving deep
into rectifiers"): with small random weights (N(0, 0.01^2)) and tanh the std shrinks by a constant factor per layer
(0.01 sqrt(fan_in)), so the deep layers output almost exactly 0 and their gradients vanish; with weights too large
tanh units saturate at +-1; 1 / sqrt(fan_in) ("Xavier") keeps tanh layers alive, narrowing slowly; ReLU halves the
variance per layer unless the weights get the factor sqrt(2) of Kaiming / He et al. 2015, under which the std stays
about constant with about half of the outputs exactly 0. The update-to-weight ratio should be about 1e-3 (Karpathy's
rule of thumb, from the lecture): much smaller means the learning rate is too low, much larger too high.

Deviations and choices:

* The measurement takes the first ``batches`` training batches of a fresh ``train_dataloader()`` (the same batches
  every time, without augmentation), feeds them through ``pl_module(x)`` (preprocessing -> network) without
  gradients, with dropout off (eval mode). Normalisation layers use the batch's statistics as in training and
  their running statistics are restored afterwards. The random state of the run is restored too, so adding the
  callback does not change the training. Glorot & Bengio measure on 300 test examples; we use training batches.
* The update ratio is the actual change of the weights over one optimizer step (momentum, Adam's scaling and
  weight decay included), not ``lr * ||grad|| / ||w||``; with Adam the two differ.
* Under DDP every process measures its own share of the batches and only rank zero writes and logs.
* Steps that are measured cost one copy of the weights and one host synchronisation; other steps cost nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import Tensor, nn

from trainlab import rng as random_state
from trainlab.settings import Setting, checked

log = logging.getLogger("trainlab")

#: a tanh output with |a| above this counts as saturated
TANH_SATURATION = 0.99
#: a sigmoid output below this or above 1 minus this counts as saturated
SIGMOID_SATURATION = 0.01


def activation_types() -> dict[type[nn.Module], str]:
    """Every module class an :class:`~trainlab.activations.Activation` can make, with its activation name."""
    from trainlab.activations import NAMES, Activation
    from trainlab.activations.maxout import MaxoutNorm2d

    types = {type(Activation(name)()): name for name in NAMES}
    types[MaxoutNorm2d] = "maxout"  # the pre-activation ResNet's BatchNorm + maxout
    return types


def hidden_layers(net: nn.Module) -> list[tuple[str, str, nn.Module]]:
    """``(layer_k, qualified name, module)`` for every activation module of ``net``, in definition order."""
    types = tuple(activation_types())
    found = [(qualname, m) for qualname, m in net.named_modules() if isinstance(m, types)]
    return [(f"layer_{k}", qualname, m) for k, (qualname, m) in enumerate(found, start=1)]


def weight_layers(net: nn.Module) -> list[tuple[str, str, nn.Parameter]]:
    """``(layer_k, qualified name, weight)`` for every Linear/Conv layer of ``net`` (those ``init`` initialises)."""
    from trainlab.init import LAYERS

    found = [(qualname, m.weight) for qualname, m in net.named_modules() if isinstance(m, LAYERS)]
    return [(f"layer_{k}", qualname, w) for k, (qualname, w) in enumerate(found, start=1)]


def saturation_rule(module: nn.Module):
    """``tensor -> bool mask`` of saturated outputs for tanh and sigmoid; ``None`` for other activations."""
    if isinstance(module, nn.Tanh):
        return lambda a: a.abs() > TANH_SATURATION
    if isinstance(module, nn.Sigmoid):
        return lambda a: (a < SIGMOID_SATURATION) | (a > 1.0 - SIGMOID_SATURATION)
    return None


class _LayerAccumulator:
    """Running statistics of one layer's outputs over several batches (Chan et al.'s parallel variance)."""

    def __init__(self, module: nn.Module, bins: int) -> None:
        self.saturated_rule = saturation_rule(module)
        self.bins = bins
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.zeros = 0
        self.saturated = 0
        self.outside = 0
        self.counts: Tensor | None = None
        self.alive: Tensor | None = None

    def update(self, a: Tensor, lo: float, hi: float) -> None:
        a = a.detach()
        x = a.double()
        n_b = x.numel()
        if n_b == 0:
            return
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.n * n_b / total
        self.n = total
        self.zeros += int((a == 0).sum())
        if self.saturated_rule is not None:
            self.saturated += int(self.saturated_rule(a).sum())
        counts = torch.histc(a.float(), bins=self.bins, min=lo, max=hi).double().cpu()
        self.counts = counts if self.counts is None else self.counts + counts
        self.outside += int(((a < lo) | (a > hi)).sum())
        if a.ndim >= 2:
            alive = (a != 0).transpose(0, 1).reshape(a.shape[1], -1).any(dim=1).cpu()
            self.alive = alive if self.alive is None else self.alive | alive

    def result(self, lo: float, hi: float) -> dict[str, Any]:
        n = max(self.n, 1)
        return {
            "mean": self.mean,
            "std": float(np.sqrt(max(self.m2, 0.0) / n)),
            "dead_fraction": self.zeros / n,
            "saturated_fraction": self.saturated / n if self.saturated_rule is not None else None,
            "dead_unit_fraction": float((~self.alive).double().mean()) if self.alive is not None else None,
            "samples": self.n,
            "histogram": {
                "edges": [float(f"{edge:.8g}") for edge in np.linspace(lo, hi, self.bins + 1)],
                "counts": [int(c) for c in (self.counts.tolist() if self.counts is not None else [0] * self.bins)],
                "outside": self.outside,
            },
        }


def auto_range(outputs: Sequence[tuple[nn.Module, Tensor]]) -> tuple[float, float]:
    """One histogram range for all layers: [-1, 1] for tanh, [0, 1] for sigmoid networks, else the range of the
    first measured batch over all layers (so a layer that collapses shows up as a spike, as in the lecture)."""
    modules = [m for m, _ in outputs]
    if modules and all(isinstance(m, nn.Tanh) for m in modules):
        return -1.0, 1.0
    if modules and all(isinstance(m, nn.Sigmoid) for m in modules):
        return 0.0, 1.0
    values = [a.detach() for _, a in outputs if a.numel()]
    lo = min((float(a.min()) for a in values), default=-1.0)
    hi = max((float(a.max()) for a in values), default=1.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # a diverged network
        return -1.0, 1.0
    if not hi > lo:
        lo, hi = lo - 1.0, hi + 1.0
    return lo, hi


@torch.no_grad()
def measure_activations(
    model: nn.Module,
    inputs: Iterable[Tensor],
    net: nn.Module | None = None,
    bins: int = 50,
    histogram_range: Sequence[float] | None = None,
) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """Statistics of every hidden layer of ``net`` (default: ``model``) while ``model`` runs on ``inputs``.

    Returns one dict per layer (``layer``, ``module``, ``activation`` and the statistics described in the module
    docstring) and the histogram range used (``histogram_range``, or :func:`auto_range` of the first batch).
    The caller chooses the mode (eval/train) of ``model``.
    """
    net = net if net is not None else model
    names = activation_types()
    layers = hidden_layers(net)
    captured: list[tuple[int, Tensor]] = []
    handles = []
    for i, (_, _, module) in enumerate(layers):

        def hook(_module, _args, output, i=i):
            if isinstance(output, Tensor):
                captured.append((i, output.detach()))

        handles.append(module.register_forward_hook(hook))
    accumulators = [_LayerAccumulator(module, bins) for _, _, module in layers]
    rng = tuple(float(v) for v in histogram_range) if histogram_range is not None else None
    try:
        for x in inputs:
            captured.clear()
            model(x)
            if rng is None:
                rng = auto_range([(layers[i][2], a) for i, a in captured])
            for i, a in captured:
                accumulators[i].update(a, *rng)
    finally:
        for handle in handles:
            handle.remove()
    rng = rng if rng is not None else (-1.0, 1.0)
    results = []
    for (layer, qualname, module), acc in zip(layers, accumulators, strict=True):
        if acc.n == 0:
            continue  # the module did not run (a branch not taken, or a vectorised ensemble)
        entry = {"layer": layer, "module": qualname, "activation": names.get(type(module), type(module).__name__)}
        results.append(entry | acc.result(*rng))
    return results, rng


class ActivationStats(Callback):
    """Record per-layer activation statistics (init, end) and update-to-weight ratios; see the module docstring.

    Args:
        output_dir: where ``activation_stats.json``, ``update_ratio.json`` and ``activation_stats.png`` go (the
            run directory, ``${paths.output_dir}``); ``None``: the trainer's ``default_root_dir``.
        batches: training batches per measurement.
        every_n_epochs: also measure after every n-th training epoch; ``None``: at init and at the end only.
        update_ratio_every_n_steps: measure the update-to-weight ratio of every n-th optimizer step (0 / None: never).
        bins: histogram bins.
        histogram_range: ``[lo, hi]`` of the histograms; ``None``: [-1, 1] for tanh, [0, 1] for sigmoid, else the
            range of the first measurement, kept for the later ones so that they are comparable.
        plot: write ``activation_stats.png`` at the end.
    """

    @checked
    def __init__(
        self,
        output_dir: str | None = None,
        batches: Annotated[int, Setting("training batches per measurement", low=1)] = 4,
        every_n_epochs: Annotated[int, Setting("epochs between extra measurements (0: none)", low=0)] | None = None,
        update_ratio_every_n_steps: Annotated[
            int, Setting("optimizer steps between update-ratio measurements (0: never)", low=0)
        ]
        | None = 20,
        bins: Annotated[int, Setting("histogram bins", low=1)] = 50,
        histogram_range: Sequence[float] | None = None,
        plot: Annotated[bool, Setting("whether to plot the activation statistics")] = True,
    ) -> None:
        if histogram_range is not None and (len(histogram_range) != 2 or not histogram_range[0] < histogram_range[1]):
            raise ValueError(f"callbacks.activation_stats.histogram_range={histogram_range}: give [lo, hi], lo < hi")
        self.output_dir = output_dir
        self.batches = batches
        self.every_n_epochs = every_n_epochs or None
        self.update_ratio_every_n_steps = update_ratio_every_n_steps or None
        self.bins = bins
        self.histogram_range = list(histogram_range) if histogram_range is not None else None
        self.plot = plot
        self.activations: list[dict[str, Any]] = []
        self.update_ratios: list[dict[str, Any]] = []
        self._range: tuple[float, float] | None = None
        self._before: tuple[int, list[Tensor]] | None = None

    # ---- where and what ----
    def _dir(self, trainer: Trainer) -> Path:
        return Path(self.output_dir if self.output_dir is not None else trainer.default_root_dir)

    @staticmethod
    def _net(pl_module: LightningModule) -> nn.Module:
        return getattr(pl_module, "net", pl_module)

    # ---- activation measurements ----
    def _batches(self, trainer: Trainer, device: torch.device) -> list[Tensor]:
        datamodule = trainer.datamodule
        transform = getattr(datamodule, "train_transform", None)
        if transform is not None:
            datamodule.train_transform = None  # no augmentation (loader=dataloader augments per sample)
        try:
            torch.manual_seed(0)  # a shuffling DataLoader gives the same batches every time (restored after)
            inputs = []
            for i, batch in enumerate(datamodule.train_dataloader()):
                if i >= self.batches:
                    break
                x = batch[0] if isinstance(batch, list | tuple) else batch
                inputs.append(x.to(device))
            return inputs
        finally:
            if transform is not None:
                datamodule.train_transform = transform

    def measure(self, trainer: Trainer, pl_module: LightningModule, phase: str) -> list[dict[str, Any]]:
        """Measure now, append the entries to :attr:`activations`, log them, write the json."""
        if trainer.datamodule is None:
            return []
        step, epoch = trainer.global_step, trainer.current_epoch
        with random_state.kept(), _eval_mode(pl_module):
            inputs = self._batches(trainer, pl_module.device)
            results, self._range = measure_activations(
                pl_module, inputs, self._net(pl_module), self.bins, self.histogram_range or self._range
            )
        if not results:
            log.warning("callbacks.activation_stats: no activation module of the network ran: nothing to measure")
            return []
        first = ("layer", "step", "mean", "std", "dead_fraction", "saturated_fraction", "phase", "epoch")
        entries = [
            {"layer": r["layer"], "step": step}
            | {k: r[k] for k in first[2:6]}
            | {"phase": phase, "epoch": epoch}
            | {k: v for k, v in r.items() if k not in first}
            for r in results
        ]
        self.activations.extend(entries)
        if trainer.is_global_zero:
            self._log_activations(trainer, entries, step)
            self._write(trainer)
        return entries

    def _log_activations(self, trainer: Trainer, entries: list[dict[str, Any]], step: int) -> None:
        scalars = {}
        for e in entries:
            for key in ("mean", "std", "dead_fraction", "saturated_fraction"):
                if e[key] is not None:
                    scalars[f"activations/{e['layer']}/{key}"] = e[key]
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=step)
            if _is_wandb(logger):
                import wandb

                histograms = {
                    f"activations/{e['layer']}": wandb.Histogram(
                        np_histogram=(np.asarray(e["histogram"]["counts"]), np.asarray(e["histogram"]["edges"]))
                    )
                    for e in entries
                }
                logger.log_metrics(histograms, step=step)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.measure(trainer, pl_module, "init" if trainer.global_step == 0 else "resume")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.measure(trainer, pl_module, "epoch")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        last = [e for e in self.activations if e["step"] == trainer.global_step and e["phase"] == "epoch"]
        if last:  # the last epoch's measurement is the end's
            for e in last:
                e["phase"] = "end"
        else:
            self.measure(trainer, pl_module, "end")
        if trainer.is_global_zero:
            self._write(trainer, plot=self.plot)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero and (self.activations or self.update_ratios):
            self._write(trainer)

    # ---- update-to-weight ratio ----
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        n = self.update_ratio_every_n_steps
        if n is None or self._before is not None or trainer.global_step % n:
            return
        weights = [w.detach().clone() for _, _, w in weight_layers(self._net(pl_module))]
        self._before = (trainer.global_step, weights)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._before is None or trainer.global_step == self._before[0]:
            return  # no snapshot, or the optimizer has not stepped yet (gradient accumulation)
        step, before = self._before
        self._before = None
        layers = weight_layers(self._net(pl_module))
        with torch.no_grad():
            ratios = torch.stack(
                [(w.detach() - b).norm() / b.norm() for (_, _, w), b in zip(layers, before, strict=True)]
            ).tolist()  # the one host synchronisation of a measured step
        entries = [
            {"layer": layer, "module": qualname, "step": step, "ratio": r if np.isfinite(r) else None}
            for (layer, qualname, _), r in zip(layers, ratios, strict=True)
        ]
        self.update_ratios.extend(entries)
        if trainer.is_global_zero:
            metrics = {f"update_ratio/{e['layer']}": e["ratio"] for e in entries if e["ratio"] is not None}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)

    # ---- files ----
    def _write(self, trainer: Trainer, plot: bool = False) -> None:
        out = self._dir(trainer)
        out.mkdir(parents=True, exist_ok=True)
        (out / "activation_stats.json").write_text(_json_lines(self.activations))
        (out / "update_ratio.json").write_text(_json_lines(self.update_ratios))
        if plot and self.activations:
            from trainlab.activation_figures import plot_activation_stats

            plot_activation_stats(self.activations, self.update_ratios, out / "activation_stats.png")

    def state_dict(self) -> dict[str, Any]:
        return {"activations": self.activations, "update_ratios": self.update_ratios, "range": self._range}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.activations = list(state_dict.get("activations", []))
        self.update_ratios = list(state_dict.get("update_ratios", []))
        rng = state_dict.get("range")
        self._range = tuple(rng) if rng is not None else None


def _json_lines(entries: Sequence[dict[str, Any]]) -> str:
    """A JSON list with one entry per line."""
    return "[\n" + ",\n".join(json.dumps(e) for e in entries) + ("\n]\n" if entries else "]\n")


def _is_wandb(logger: Any) -> bool:
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return False
    return isinstance(logger, WandbLogger)


class _eval_mode:  # noqa: N801
    """Eval mode (no dropout), except normalisation layers, which use batch statistics as in training; their
    running statistics and every module's mode are restored on exit."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.modes = {m: m.training for m in self.module.modules()}
        self.module.eval()
        norms = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
        self.buffers = {}
        for m in self.module.modules():
            if isinstance(m, norms) and self.modes[m]:
                m.train()
                self.buffers[m] = {k: v.clone() for k, v in m.named_buffers(recurse=False)}

    def __exit__(self, *exc: object) -> None:
        with torch.no_grad():
            for m, buffers in self.buffers.items():
                for k, v in buffers.items():
                    getattr(m, k).copy_(v)
        for m, mode in self.modes.items():
            m.training = mode
