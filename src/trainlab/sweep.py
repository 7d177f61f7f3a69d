"""Hyperparameter search: the lecture's steps 4 and 5 as a Hydra sweeper driven by Optuna, and its report.

    trainlab-train -m hparams_search=coarse                       # random search, log-uniform lr and weight decay
    trainlab-train -m hparams_search=coarse hparams_search.lr=logs/lr_find/runs/<time>/lr_find.json
    trainlab-train -m hparams_search=fine hparams_search.around=logs/hparams_search/sweeps/<coarse sweep>
    trainlab-train -m hparams_search=grid                         # the same ranges as a 3x3 grid: same budget
    trainlab-train -m hparams_search=coarse hydra.sweeper.n_trials=20

Random search samples every parameter afresh in each trial, so 9 trials try 9 learning rates where a 3x3 grid
tries 3 (Bergstra & Bengio 2012, "Random search for hyper-parameter optimization"). Learning rate and weight
decay are sampled log-uniformly.

The sweeper (:class:`OptunaSweep`, wrapped as a Hydra plugin in ``hydra_plugins.trainlab_sweeper``) asks Optuna
for one trial at a time, launches it as a Hydra job in ``<sweep dir>/<trial number>``, and tells Optuna the job's
return value (``optimized_metric``, ``val/acc_best`` by default). It differs from Hydra's Optuna plugin (which
pins Optuna < 3) in three ways a user running long sweeps needs:

* **failed trials are recorded, and the sweep goes on**: a job that raises or returns NaN (diverged) is told to
  Optuna as failed, with its error, and appears as ``failed`` in the report;
* **resumable**: the study lives in ``<sweep dir>/optuna.db`` (SQLite). Running the same command again loads it
  and runs only the trials still missing to reach ``n_trials``; a trial cut off by the interruption is marked
  failed and its parameters are tried again. The sampler's seed is offset by the number of trials already made,
  so a resumed random search does not repeat its first draws. Starting the study with other settings under the
  same name is refused (name a new one with ``hydra.sweeper.study_name=<name>``);
* **a report after every trial**: ``sweep.csv`` (one row per trial: parameters, metrics, status, run dir, error),
  ``sweep.md`` (sorted table) and ``sweep.png`` (the metric against each parameter, log axes) in the sweep dir.

Search space: ``hydra.sweeper.params`` maps a config key to a spec,
``{low, high, log}`` (a float range), ``{center, factor, log}`` (the range center/factor .. center*factor;
``around``, when set, replaces ``center``),
``{choices: [...]}`` (categorical), and ``points: n`` for the grid sampler (n values spaced evenly, on a log
scale when ``log``). ``center`` may be a number, the path of an ``lr_find.json`` (its ``suggested_lr``), or a sweep
directory (the value of that parameter in its best completed trial). Command-line sweeps (``model.width=64,128``)
become categorical parameters.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("trainlab")

SAMPLERS = ("random", "tpe", "grid")
#: metrics copied from each trial's metrics.json into the report
REPORT_METRICS = ("val/acc_best", "val/acc", "val/loss", "train/acc", "train/loss", "test/acc", "epochs", "diagnosis")


class SweepConfigError(ValueError):
    """A search-space or sweeper setting that cannot work; the message names it and the valid choices."""


# ---------------------------------------------------------------------------------------------------------------
# search space
# ---------------------------------------------------------------------------------------------------------------
def resolve_center(value: Any, key: str) -> float:
    """A range's centre: a number, an ``lr_find.json`` (its ``suggested_lr``) or a sweep dir (best trial's value)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    path = Path(str(value))
    if path.is_dir() and (path / "sweep.csv").exists():
        best = best_row(read_csv(path / "sweep.csv"))
        if best is None or best.get(key) in (None, ""):
            raise SweepConfigError(f"{key}: center={value} is a sweep without a completed trial that sets {key}")
        return float(best[key])
    if path.is_file() and path.suffix == ".json":
        data = json.loads(path.read_text())
        if data.get("suggested_lr") is None:
            raise SweepConfigError(f"{key}: center={value} has no suggested_lr (did recipe=lr_find succeed?)")
        return float(data["suggested_lr"])
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SweepConfigError(
            f"{key}: center={value!r} is neither a number, an lr_find.json nor a sweep directory with sweep.csv"
        ) from None


def distributions(params: Mapping[str, Any], grid: bool = False) -> dict[str, Any]:
    """Optuna distributions (or, with ``grid``, lists of grid values) from ``hydra.sweeper.params``."""
    import optuna.distributions as od

    space: dict[str, Any] = {}
    for key, spec in (params or {}).items():
        spec = dict(spec) if isinstance(spec, Mapping) else {"choices": list(spec)}
        if spec.get("around") is not None:  # a finished sweep (or lr_find.json) replaces the configured centre
            spec["center"] = spec["around"]
        spec.pop("around", None)
        unknown = set(spec) - {"low", "high", "center", "factor", "log", "choices", "points"}
        if unknown:
            raise SweepConfigError(
                f"hydra.sweeper.params.{key}: unknown settings {sorted(unknown)}; "
                "use low/high, center/factor, log, choices, points"
            )
        if "choices" in spec:
            choices = list(spec["choices"])
            space[key] = choices if grid else od.CategoricalDistribution(choices)
            continue
        log_scale = bool(spec.get("log", False))
        if "center" in spec:
            center, factor = resolve_center(spec["center"], key), float(spec.get("factor", 10.0))
            if factor <= 1:
                raise SweepConfigError(f"hydra.sweeper.params.{key}.factor={factor} must be > 1")
            low, high = (center / factor, center * factor) if log_scale else (center - factor, center + factor)
        elif "low" in spec and "high" in spec:
            low, high = float(spec["low"]), float(spec["high"])
        else:
            raise SweepConfigError(f"hydra.sweeper.params.{key}: give low and high, center (and factor), or choices")
        if not low < high:
            raise SweepConfigError(f"hydra.sweeper.params.{key}: low={low} must be below high={high}")
        if log_scale and low <= 0:
            raise SweepConfigError(f"hydra.sweeper.params.{key}: a log range needs low > 0, got {low}")
        if grid:
            n = int(spec.get("points", 3))
            if n < 2:
                raise SweepConfigError(f"hydra.sweeper.params.{key}.points={n}: a grid axis needs at least 2 points")
            if log_scale:
                space[key] = [float(low * (high / low) ** (i / (n - 1))) for i in range(n)]
            else:
                space[key] = [float(low + (high - low) * i / (n - 1)) for i in range(n)]
        else:
            space[key] = od.FloatDistribution(low, high, log=log_scale)
    return space


def command_line_space(arguments: Sequence[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """Split the command line into sweeps (``key=a,b`` -> choices) and fixed overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeps: dict[str, list[Any]] = {}
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        if override.is_sweep_override():
            sweeps[override.get_key_element()] = [str(v) for v in override.sweep_string_iterator()]
        else:
            fixed.append(override.input_line)
    return sweeps, fixed


def format_value(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------------------------
# the sweep
# ---------------------------------------------------------------------------------------------------------------
class OptunaSweep:
    """Runs a study trial by trial through a Hydra launcher; see the module docstring."""

    def __init__(
        self,
        sampler: str = "random",
        n_trials: int = 9,
        direction: str = "maximize",
        seed: int | None = None,
        study_name: str = "sweep",
        storage: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if sampler not in SAMPLERS:
            raise SweepConfigError(f"hydra.sweeper.sampler={sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if direction not in ("maximize", "minimize"):
            raise SweepConfigError(f"hydra.sweeper.direction={direction!r}: choose maximize or minimize")
        if int(n_trials) < 1:
            raise SweepConfigError(f"hydra.sweeper.n_trials={n_trials}: run at least 1 trial")
        self.sampler_name, self.n_trials, self.direction = sampler, int(n_trials), direction
        self.seed, self.study_name, self.storage = seed, str(study_name), storage
        self.params = dict(params or {})

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(config.hydra.sweep.dir)

    def _study(self, space: Mapping[str, Any], fixed: list[str]):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage or f"sqlite:///{(self.sweep_dir / 'optuna.db').resolve()}"
        self.rdb = optuna.storages.RDBStorage(url)
        existing = {s.study_name for s in optuna.get_all_study_summaries(self.rdb)}
        signature = {
            "sampler": self.sampler_name,
            "direction": self.direction,
            "space": {k: (v if isinstance(v, list) else repr(v)) for k, v in space.items()},
            "fixed": sorted(fixed),
        }
        made = (
            len(optuna.load_study(study_name=self.study_name, storage=self.rdb).trials)
            if (self.study_name in existing)
            else 0
        )
        seed = None if self.seed is None else int(self.seed) + made
        if self.sampler_name == "grid":
            sampler = optuna.samplers.GridSampler(dict(space), seed=seed)
        elif self.sampler_name == "tpe":
            sampler = optuna.samplers.TPESampler(seed=seed)
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.rdb,
            sampler=sampler,
            direction=self.direction,
            load_if_exists=True,
        )
        previous = study.user_attrs.get("signature")
        if previous is None:
            study.set_user_attr("signature", signature)
        elif previous != json.loads(json.dumps(signature)):
            raise SweepConfigError(
                f"the study {self.study_name!r} in {self.sweep_dir} was started with other settings "
                f"({_diff(previous, signature)}). Run the same command to continue it, or start a new study with "
                "hydra.sweeper.study_name=<new name>"
            )
        return study

    def sweep(self, arguments: list[str]) -> Any:
        from optuna.trial import TrialState

        sweeps, fixed = command_line_space(arguments)
        grid = self.sampler_name == "grid"
        space = distributions(self.params, grid=grid)
        for key, values in sweeps.items():
            if key in space:
                log.info(f"{key}: the command line's values {values} replace its range in hydra.sweeper.params")
            if grid:
                space[key] = values
            else:
                import optuna.distributions as od

                space[key] = od.CategoricalDistribution(values)
        if not space:
            raise SweepConfigError("nothing to search: set hydra.sweeper.params or sweep a key (key=a,b)")
        study = self._study(space, fixed)
        budget = self.n_trials
        if grid:
            size = math.prod(len(v) for v in space.values())
            if budget > size:
                log.info(f"the grid has {size} points: running {size} trials, not {budget}")
                budget = size
        stale = [t for t in study.trials if t.state == TrialState.RUNNING]
        for trial in stale:  # cut off by an interruption: failed, and its parameters tried again
            self.rdb.set_trial_user_attr(trial._trial_id, "error", "interrupted before it finished (tried again)")
            self.rdb.set_trial_user_attr(trial._trial_id, "interrupted", True)
            self.rdb.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            study.enqueue_trial(trial.params)
        done = sum(
            t.state in (TrialState.COMPLETE, TrialState.FAIL) and not t.user_attrs.get("interrupted")
            for t in study.trials
        )
        if done:
            log.info(f"continuing study {self.study_name!r}: {done} of {budget} trials already made ({self.sweep_dir})")
        fixed_distributions = {k: v for k, v in space.items() if not isinstance(v, list)}
        while done < budget:
            if grid:  # the grid sampler picks the point; asking each parameter records its value
                trial = study.ask()
                for key, values in space.items():
                    trial.suggest_categorical(key, values)
            else:
                trial = study.ask(fixed_distributions)
            overrides = [*fixed, *(f"{k}={format_value(v)}" for k, v in trial.params.items())]
            log.info(f"trial {trial.number} ({done + 1}/{budget}): {' '.join(overrides[len(fixed) :])}")
            try:
                (ret,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
            except Exception as err:  # noqa: BLE001 - e.g. the job's config does not compose (activation=relu6)
                ret = None
                run_dir, value, error = self.sweep_dir / str(trial.number), None, f"{type(err).__name__}: {err}"
            if ret is not None:
                run_dir = _output_dir(ret, self.sweep_dir / str(trial.number))
                value, error = _trial_value(ret, run_dir)
            trial.set_user_attr("run_dir", str(run_dir))
            if error is None:
                _tell(study, trial, value)
                log.info(f"trial {trial.number}: {value:.4f}")
            else:
                trial.set_user_attr("error", error)
                _tell(study, trial, state=TrialState.FAIL)
                log.warning(f"trial {trial.number} failed, the sweep goes on: {error}")
            done += 1
            self.report(study)
        rows = self.report(study)
        best = best_row(rows)
        if best is not None:
            log.info(f"best trial {best['trial']}: {best['value']} ({self.sweep_dir / 'sweep.md'})")
        return best

    def report(self, study) -> list[dict[str, Any]]:
        rows = trial_rows(study)
        metric = (self.config.get("optimized_metric") if hasattr(self, "config") else None) or "value"
        write_report(
            self.sweep_dir,
            rows,
            list(self.param_keys(study)),
            metric,
            self.direction,
            self.study_name,
            log_keys={k for k, s in self.params.items() if isinstance(s, Mapping) and s.get("log")},
        )
        return rows

    @staticmethod
    def param_keys(study) -> list[str]:
        keys: dict[str, None] = {}
        for t in study.trials:
            keys.update(dict.fromkeys(t.params))
        return list(keys)


def _tell(study, trial, value: float | None = None, state=None) -> None:
    """``study.tell``; Optuna's grid sampler calls ``study.stop()`` once the grid is done, which only works inside
    ``study.optimize`` (this loop is ours), so that one error is ignored: the trial was stored before it."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as err:
        if "Study.stop" not in str(err):
            raise


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    new = json.loads(json.dumps(new))
    return "; ".join(f"{k}: was {old.get(k)}, now {new.get(k)}" for k in new if old.get(k) != new.get(k))


def _output_dir(ret, default: Path) -> Path:
    try:
        return Path(ret.hydra_cfg.hydra.runtime.output_dir)
    except Exception:  # noqa: BLE001 - a job that failed before Hydra set it up
        return default


def _trial_value(ret, run_dir: Path) -> tuple[float | None, str | None]:
    """(value, None) for a completed trial, (None, error) for a failed one."""
    from hydra.core.utils import JobStatus

    if ret.status == JobStatus.FAILED:
        err = ret._return_value
        return None, f"{type(err).__name__}: {err}"
    value = ret.return_value
    if value is None or not math.isfinite(float(value)):
        metrics = _read_metrics(run_dir)
        error = metrics.get("error") or f"the job returned {value} (status {metrics.get('status', 'unknown')})"
        return None, str(error)
    return float(value), None


def _read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------------------------------
# the report: sweep.csv, sweep.md, sweep.png
# ---------------------------------------------------------------------------------------------------------------
def trial_rows(study) -> list[dict[str, Any]]:
    """One row per trial: number, status, parameters, value, the trial's metrics, run dir, error."""
    from optuna.trial import TrialState

    status = {TrialState.COMPLETE: "completed", TrialState.FAIL: "failed", TrialState.RUNNING: "running"}
    rows = []
    for t in study.trials:
        if t.state == TrialState.WAITING:
            continue
        run_dir = t.user_attrs.get("run_dir", "")
        metrics = _read_metrics(Path(run_dir)) if run_dir else {}
        row: dict[str, Any] = {"trial": t.number, "status": status.get(t.state, t.state.name.lower())}
        row.update(t.params)
        row["value"] = t.value if t.state == TrialState.COMPLETE else None
        row.update({k: metrics.get(k) for k in REPORT_METRICS})
        row["run_dir"] = run_dir
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return rows


def best_row(rows: Sequence[Mapping[str, Any]], direction: str = "maximize") -> Mapping[str, Any] | None:
    done = [r for r in rows if r.get("status") == "completed" and r.get("value") not in (None, "")]
    if not done:
        return None
    pick = max if direction == "maximize" else min
    return pick(done, key=lambda r: float(r["value"]))


def read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_report(
    sweep_dir: Path,
    rows: Sequence[Mapping[str, Any]],
    param_keys: Sequence[str],
    metric: str,
    direction: str = "maximize",
    title: str = "sweep",
    log_keys: set[str] | None = None,
) -> None:
    """Write ``sweep.csv``, ``sweep.md`` and ``sweep.png`` for ``rows`` into ``sweep_dir`` (each file replaced
    atomically, so an interrupted sweep leaves complete files)."""
    sweep_dir = Path(sweep_dir)
    columns = ["trial", "status", *param_keys, "value", *REPORT_METRICS, "run_dir", "error"]
    tmp = sweep_dir / "sweep.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    tmp.replace(sweep_dir / "sweep.csv")

    ok = [r for r in rows if r.get("status") == "completed" and r.get("value") is not None]
    ok.sort(key=lambda r: float(r["value"]), reverse=direction == "maximize")
    rest = [r for r in rows if r not in ok]
    best = ok[0] if ok else None
    lines = [f"# {title}: {len(ok)} completed, {len(rest)} failed or running, of {len(rows)} trials", ""]
    if best is not None:
        params = ", ".join(f"{k}={_fmt(best.get(k))}" for k in param_keys)
        lines += [f"Best: trial {best['trial']}, {metric} = {_fmt(best['value'])} ({params})", ""]
    head = ["trial", *param_keys, metric, "val/loss", "train/acc", "epochs", "status", "run dir"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in [*ok, *rest]:
        cells = [
            r.get("trial"),
            *(r.get(k) for k in param_keys),
            r.get("value"),
            r.get("val/loss"),
            r.get("train/acc"),
            r.get("epochs"),
            r.get("status") + (f": {r['error']}" if r.get("error") else ""),
            _relative(r.get("run_dir"), sweep_dir),
        ]
        lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
    tmp = sweep_dir / "sweep.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(sweep_dir / "sweep.md")
    plot_sweep(sweep_dir / "sweep.png", rows, param_keys, metric, log_keys or set())


def _relative(run_dir: Any, sweep_dir: Path) -> str:
    if not run_dir:
        return ""
    try:
        return str(Path(run_dir).resolve().relative_to(Path(sweep_dir).resolve()))
    except ValueError:
        return str(run_dir)


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/").replace("\n", " ")


def plot_sweep(
    path: Path, rows: Sequence[Mapping[str, Any]], param_keys: Sequence[str], metric: str, log_keys: set[str]
) -> None:
    """The metric against each numeric parameter (log axis for log-sampled ones); failed trials as red crosses
    at the bottom; with two numeric parameters, also the trials in the plane of both, coloured by the metric."""
    numeric = [k for k in param_keys if all(_is_number(r.get(k)) for r in rows if r.get(k) is not None)]
    if not numeric or not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(numeric) + (1 if len(numeric) == 2 else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    ok = [r for r in rows if r.get("status") == "completed" and r.get("value") is not None]
    failed = [r for r in rows if r not in ok]
    values = [float(r["value"]) for r in ok]
    floor = min(values) if values else 0.0
    for ax, key in zip(axes[0], numeric, strict=False):
        ax.scatter([float(r[key]) for r in ok], values, color="C0", label="completed")
        if failed:
            ax.scatter(
                [float(r[key]) for r in failed if r.get(key) is not None],
                [floor] * sum(r.get(key) is not None for r in failed),
                color="C3",
                marker="x",
                label="failed",
            )
            ax.legend(fontsize=8)
        ax.set(xlabel=key, ylabel=metric, xscale="log" if _log_axis(key, rows, log_keys) else "linear")
        ax.grid(True, which="both", alpha=0.3)
    if len(numeric) == 2:
        ax = axes[0][-1]
        x, y = numeric
        points = ax.scatter([float(r[x]) for r in ok], [float(r[y]) for r in ok], c=values, cmap="viridis")
        if failed:
            ax.scatter([float(r[x]) for r in failed], [float(r[y]) for r in failed], color="C3", marker="x")
        fig.colorbar(points, ax=ax, label=metric)
        ax.set(
            xlabel=x,
            ylabel=y,
            xscale="log" if _log_axis(x, rows, log_keys) else "linear",
            yscale="log" if _log_axis(y, rows, log_keys) else "linear",
        )
    fig.suptitle(f"{len(ok)} completed, {len(failed)} failed")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _log_axis(key: str, rows: Sequence[Mapping[str, Any]], log_keys: set[str]) -> bool:
    if key in log_keys:
        return True
    values = [float(r[key]) for r in rows if _is_number(r.get(key))]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 100


def best_overrides(sweep_dir: str | Path) -> list[str]:
    """The best completed trial of a sweep as command-line overrides (``optimizer.lr=0.003 ...``)."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / "sweep.csv").is_file():
        raise SweepConfigError(
            f"sweep_dir={str(sweep_dir)!r} holds no sweep.csv: give the directory of a `trainlab-train -m "
            "hparams_search=...` sweep"
        )
    rows = read_csv(sweep_dir / "sweep.csv")
    best = best_row(rows)
    if best is None:
        raise SweepConfigError(f"sweep_dir={str(sweep_dir)!r}: its sweep.csv has no completed trial yet")
    fixed = set(rows[0]) - {"trial", "status", "value", *REPORT_METRICS, "run_dir", "error"}
    return [f"{k}={best[k]}" for k in rows[0] if k in fixed and best.get(k) not in (None, "")]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m trainlab.sweep best <sweep dir>`` prints the best trial's parameters as overrides, e.g. to train
    the final model: ``trainlab-train $(python -m trainlab.sweep best logs/hparams_search/sweeps/fine-digits-mlp)``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trainlab.sweep", description=main.__doc__)
    parser.add_argument("command", choices=["best"])
    parser.add_argument("sweep_dir")
    args = parser.parse_args(argv)
    try:
        print(" ".join(best_overrides(args.sweep_dir)))
    except SweepConfigError as err:  # bad input: one line, exit 2, as every console script
        print(f"python -m trainlab.sweep: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
