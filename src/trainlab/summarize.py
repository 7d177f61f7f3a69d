"""Summarise a multirun: one row per setting, test accuracy averaged over seeds.

    python -m trainlab.summarize logs/train/multiruns/<time>            # markdown table on stdout
    python -m trainlab.summarize logs/train/multiruns/<time> --metric val/acc_best

Each job directory holds ``metrics.json`` and ``.hydra/overrides.yaml``; jobs whose overrides differ only in
``seed`` form one row. Jobs that failed (``status`` failed or diverged in ``metrics.json``, or no
``metrics.json`` at all: killed) are counted as failed, with their error.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import yaml


def collect(sweep_dir: Path, metric: str) -> list[dict]:
    jobs = {
        f.parent.parent: [o for o in yaml.safe_load(f.read_text()) or [] if not o.startswith("seed=")]
        for f in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"), key=lambda f: int(f.parent.parent.name))
    }
    shared = set.intersection(*(set(o) for o in jobs.values())) if jobs else set()
    groups: dict[str, dict] = {}
    for job, overrides in jobs.items():
        key = " ".join(o for o in overrides if o not in shared) or "(shared settings only)"
        row = groups.setdefault(key, {"setting": key, "values": [], "failed": 0, "errors": []})
        metrics_file = job / "metrics.json"
        try:
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        except ValueError:  # cut off while it was written: the job did not finish cleanly
            metrics = {"status": "failed", "error": "metrics.json is cut off (not valid JSON)"}
        if metric in metrics and metrics.get("status", "completed") == "completed":
            row["values"].append(float(metrics[metric]))
        else:
            row["failed"] += 1
            error = metrics.get("error") or ("no metrics.json (killed?)" if not metrics else f"no {metric}")
            row["errors"].append(f"job {job.name}: {error}")
    return list(groups.values())


def to_markdown(rows: list[dict], metric: str) -> str:
    lines = [f"| setting | {metric} (mean ± std) | runs | failed |", "|---|---|---|---|"]
    errors = []
    for row in rows:
        values = row["values"]
        mean = statistics.fmean(values) if values else float("nan")
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| `{row['setting']}` | {mean:.4f} ± {std:.4f} | {len(values)} | {row['failed']} |")
        errors += [f"- `{row['setting']}` {e}" for e in row.get("errors", [])]
    if errors:
        lines += ["", "Failed jobs:", *errors]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--metric", default="test/acc")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"sweep_dir={str(args.sweep_dir)!r} is not a directory")
    rows = collect(args.sweep_dir, args.metric)
    if not rows:
        parser.error(f"sweep_dir={str(args.sweep_dir)!r} holds no job directories (<n>/.hydra/overrides.yaml)")
    print(to_markdown(rows, args.metric))


if __name__ == "__main__":
    main()
