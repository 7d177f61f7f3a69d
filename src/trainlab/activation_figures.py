"""Figures of the per-layer activation statistics that :class:`~trainlab.callbacks.ActivationStats` records.

* :func:`plot_activation_stats`: one run's ``activation_stats.png``: a histogram per hidden layer (columns) and
  measurement (rows: init, ..., end), titled with the layer's mean and std, like the lecture's figure (after
  Glorot & Bengio 2010); below them the std and the dead / saturated fractions per layer and the
  update-to-weight ratios against steps, with the ~1e-3 rule of thumb as a line.
* :func:`combined_figure`: one figure for a multirun (``trainlab-train -m experiment=init_study``): one row of
  initialisation histograms per job, labelled "activation / init" (and its test accuracy), and the per-layer std
  (at init and at the end) and median update ratio of every job. Everything is re-drawn from the jobs' json files.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("trainlab")

#: the update-to-weight ratio the lecture calls healthy (Karpathy's rule of thumb)
UPDATE_RATIO_RULE = 1e-3


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _layer_index(layer: str) -> int:
    tail = layer.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def layer_names(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The layers of ``entries`` in network order."""
    return sorted({e["layer"] for e in entries}, key=_layer_index)


def pick_columns(layers: Sequence[str], max_columns: int) -> list[str]:
    """At most ``max_columns`` layers, evenly spaced, the first and the last included."""
    if len(layers) <= max_columns:
        return list(layers)
    idx = sorted({round(i * (len(layers) - 1) / (max_columns - 1)) for i in range(max_columns)})
    return [layers[i] for i in idx]


def measurements(entries: Sequence[dict[str, Any]]) -> list[tuple[str, int, dict[str, dict[str, Any]]]]:
    """``(phase, step, {layer: entry})`` per measurement, in the order they were taken."""
    out: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for e in entries:
        out.setdefault((e.get("phase", ""), e["step"]), {})[e["layer"]] = e
    return [(phase, step, layers) for (phase, step), layers in out.items()]


def _histogram(ax, entry: dict[str, Any] | None, color: str = "C0") -> None:
    ax.tick_params(labelsize=6)
    ax.set_yticks([])
    if entry is None or not entry.get("histogram"):
        ax.set_axis_off()
        return
    hist = entry["histogram"]
    counts, edges = hist["counts"], hist["edges"]
    ax.stairs(counts, edges, fill=True, color=color, alpha=0.8)
    ax.stairs(counts, edges, color=color, lw=1.0)  # an outline, so a one-bin spike stays visible
    ax.set_xlim(edges[0], edges[-1])
    if entry.get("dead_fraction"):  # the exact zeros' spike would flatten the rest: clip it (the title says how big)
        rest = [c for c, lo, hi in zip(counts, edges[:-1], edges[1:], strict=True) if not lo <= 0.0 <= hi]
        if rest and max(rest) > 0:
            ax.set_ylim(0, 1.15 * max(rest))


def _stat_title(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    dead = f", zeros {entry['dead_fraction']:.0%}" if entry.get("dead_fraction") else ""
    return f"mean {entry['mean']:.2g}\nstd {entry['std']:.2g}{dead}"


def plot_activation_stats(
    activations: Sequence[dict[str, Any]],
    update_ratios: Sequence[dict[str, Any]] = (),
    path: str | Path = "activation_stats.png",
    title: str = "",
    max_columns: int = 12,
) -> Path:
    """One run's figure (see the module docstring); returns ``path``."""
    plt = _pyplot()
    from matplotlib.gridspec import GridSpec

    layers = layer_names(activations)
    columns = pick_columns(layers, max_columns)
    rows = measurements(activations)
    ncols = max(len(columns), 3)
    fig = plt.figure(figsize=(1.5 * ncols + 1.0, 1.7 * len(rows) + 3.0))
    grid = GridSpec(len(rows) + 1, ncols, figure=fig, height_ratios=[1.0] * len(rows) + [1.6])
    for r, (phase, step, by_layer) in enumerate(rows):
        for c, layer in enumerate(columns):
            ax = fig.add_subplot(grid[r, c])
            entry = by_layer.get(layer)
            _histogram(ax, entry, color=f"C{r}")
            ax.set_title((f"{layer}\n" if r == 0 else "") + _stat_title(entry), fontsize=7)
            if c == 0:
                ax.set_ylabel(f"{phase}\nstep {step}", fontsize=8)
    thirds = [
        grid[len(rows), : ncols // 3],
        grid[len(rows), ncols // 3 : 2 * ncols // 3],
        grid[len(rows), 2 * ncols // 3 :],
    ]
    ax_std, ax_frac, ax_ratio = (fig.add_subplot(g) for g in thirds)
    xs = [_layer_index(layer) for layer in layers]
    for r, (phase, step, by_layer) in enumerate(rows):
        label = f"{phase} (step {step})"
        ax_std.plot(
            xs,
            [by_layer[layer]["std"] if layer in by_layer else math.nan for layer in layers],
            "o-",
            ms=3,
            color=f"C{r}",
            label=label,
        )
        dead = [by_layer[layer]["dead_fraction"] if layer in by_layer else math.nan for layer in layers]
        ax_frac.plot(xs, dead, "o-", ms=3, color=f"C{r}", label=f"dead, {label}")
        saturated = [by_layer.get(layer, {}).get("saturated_fraction") for layer in layers]
        if any(s is not None for s in saturated):
            ax_frac.plot(
                xs,
                [math.nan if s is None else s for s in saturated],
                "s--",
                ms=3,
                color=f"C{r}",
                label=f"saturated, {label}",
            )
    ax_std.set_yscale("log")
    ax_std.set(xlabel="hidden layer", ylabel="std of activations")
    ax_frac.set(xlabel="hidden layer", ylabel="fraction", ylim=(-0.02, 1.02))
    by_weight: dict[str, list[tuple[int, float]]] = {}
    for e in update_ratios:
        if e.get("ratio") is not None and e["ratio"] > 0:
            by_weight.setdefault(e["layer"], []).append((e["step"], e["ratio"]))
    for k, (layer, points) in enumerate(sorted(by_weight.items(), key=lambda kv: _layer_index(kv[0]))):
        ax_ratio.plot(
            *zip(*points, strict=True), ".-", ms=3, color=plt.cm.viridis(k / max(len(by_weight) - 1, 1)), label=layer
        )
    ax_ratio.axhline(UPDATE_RATIO_RULE, color="k", ls=":", lw=1, label="1e-3")
    if by_weight:
        ax_ratio.set_yscale("log")
    ax_ratio.set(xlabel="step", ylabel="||dW|| / ||W||")
    for ax in (ax_std, ax_frac, ax_ratio):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2 if ax is ax_ratio else 1)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# ---- a multirun's figure ----
def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def job_label(job_dir: Path, entries: Sequence[dict[str, Any]] = ()) -> str:
    """ "activation / init" from the job's config (``config.yaml``, else ``.hydra/config.yaml``), else the
    activation the json names and the directory's name."""
    for path in (job_dir / "config.yaml", job_dir / ".hydra" / "config.yaml"):
        cfg = _read_yaml(path)
        activation = (cfg.get("activation") or {}).get("name")
        init = (cfg.get("init") or {}).get("scheme")
        if activation or init:
            return f"{activation or '?'} / {init or '?'}"
    names = sorted({e.get("activation", "?") for e in entries})
    return f"{'+'.join(names) or '?'} / {job_dir.name}"


def read_job(job_dir: Path) -> dict[str, Any]:
    """A job's activation statistics, update ratios, label and (when tested) test accuracy."""
    activations = json.loads((job_dir / "activation_stats.json").read_text())
    ratios_file = job_dir / "update_ratio.json"
    ratios = json.loads(ratios_file.read_text()) if ratios_file.is_file() else []
    metrics_file = job_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {
        "dir": job_dir,
        "label": job_label(job_dir, activations),
        "activations": activations,
        "update_ratio": ratios,
        "test_acc": metrics.get("test/acc"),
    }


def _job_order(path: Path) -> tuple[int, int | str]:
    return (0, int(path.name)) if path.name.isdigit() else (1, path.name)


def combined_figure(sweep_dir: str | Path, path: str | Path | None = None, max_columns: int = 10) -> Path | None:
    """Draw every ``<sweep_dir>/*/activation_stats.json`` into ``<sweep_dir>/activation_stats.png`` (or ``path``).

    One row per job (histograms at initialisation, one column per hidden layer, at most ``max_columns`` of them),
    then the per-layer std of every job (solid: init, dashed: end) and its median update-to-weight ratio per weight
    layer. Returns the figure's path, or ``None`` when no job has statistics.
    """
    sweep_dir = Path(sweep_dir)
    job_dirs = sorted((p.parent for p in sweep_dir.glob("*/activation_stats.json")), key=_job_order)
    jobs = []
    for job_dir in job_dirs:
        try:
            job = read_job(job_dir)
        except (OSError, ValueError) as err:
            log.warning(f"activation stats of {job_dir} unreadable: {err}")
            continue
        if job["activations"]:
            jobs.append(job)
    if not jobs:
        log.warning(f"no activation_stats.json under {sweep_dir}: no combined figure")
        return None
    plt = _pyplot()
    from matplotlib.gridspec import GridSpec

    layers = sorted({layer for job in jobs for layer in layer_names(job["activations"])}, key=_layer_index)
    columns = pick_columns(layers, max_columns)
    ncols = max(len(columns), 2)
    fig = plt.figure(figsize=(1.5 * ncols + 1.5, 1.3 * len(jobs) + 3.2))
    grid = GridSpec(len(jobs) + 1, ncols, figure=fig, height_ratios=[1.0] * len(jobs) + [2.2])
    for r, job in enumerate(jobs):
        _, _, at_init = measurements(job["activations"])[0]
        for c, layer in enumerate(columns):
            ax = fig.add_subplot(grid[r, c])
            entry = at_init.get(layer)
            _histogram(ax, entry, color=f"C{r}")
            stat = f"std {entry['std']:.2g}" if entry else ""
            if entry and entry.get("dead_fraction"):
                stat += f", 0: {entry['dead_fraction']:.0%}"
            ax.set_title((f"{layer}\n" if r == 0 else "") + stat, fontsize=7)
            if c == 0:
                acc = f"\ntest acc {job['test_acc']:.3f}" if job["test_acc"] is not None else ""
                ax.set_ylabel(f"{job['label']}{acc}", fontsize=7, rotation=0, ha="right", va="center")
    ax_std = fig.add_subplot(grid[len(jobs), : ncols // 2])
    ax_ratio = fig.add_subplot(grid[len(jobs), ncols // 2 :])
    for r, job in enumerate(jobs):
        rows = measurements(job["activations"])
        for (_phase, _step, by_layer), style in (
            ((rows[0], "o-"), (rows[-1], "x--")) if len(rows) > 1 else ((rows[0], "o-"),)
        ):
            job_layers = layer_names(list(by_layer.values()))
            ax_std.plot(
                [_layer_index(layer) for layer in job_layers],
                [by_layer[layer]["std"] for layer in job_layers],
                style,
                ms=3,
                color=f"C{r}",
                label=job["label"] if style == "o-" else None,
            )
        medians: dict[str, list[float]] = {}
        for e in job["update_ratio"]:
            if e.get("ratio") is not None and e["ratio"] > 0:
                medians.setdefault(e["layer"], []).append(e["ratio"])
        if medians:
            names = sorted(medians, key=_layer_index)
            values = [sorted(medians[n])[len(medians[n]) // 2] for n in names]
            ax_ratio.plot([_layer_index(n) for n in names], values, "o-", ms=3, color=f"C{r}", label=job["label"])
    ax_std.set_yscale("log")
    ax_std.set(xlabel="hidden layer", ylabel="std of activations", title="std per layer (o: init, x: end)")
    ax_ratio.axhline(UPDATE_RATIO_RULE, color="k", ls=":", lw=1, label="1e-3")
    ax_ratio.set_yscale("log")
    ax_ratio.set(xlabel="weight layer", ylabel="median ||dW|| / ||W||", title="update-to-weight ratio")
    for ax in (ax_std, ax_ratio):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"activations at initialisation: {sweep_dir.name}", fontsize=9)
    fig.tight_layout()
    path = Path(path) if path is not None else sweep_dir / "activation_stats.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log.info(f"Combined activation statistics of {len(jobs)} jobs: {path}")
    return path
