"""Aggregate sweeps into a report: ``python -m causalmine.report DIR [DIR …]``.

Reads every job under the multirun directories (``metrics.json`` and ``.hydra/``) and writes
``report.md`` (one row per job, sorted by the objective; mean ± std over seeds when ``seed`` was
swept), ``report.csv`` (every metric of every job) and one PNG per plotted test metric against
a swept key, one line per combination of the other swept keys. No W&B needed; with
``--wandb-project P`` the report is also logged to W&B as a ``sweep-report`` artifact (and its
table as a W&B table) in a run of job type ``sweep-report``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from causalmine.objective import objective, objective_keys

HEADLINE_METRICS = (
    "test/seq_f1",
    "test/seq_mcc",
    "test/span_f1",
    "test/span_cause_f1",
    "test/span_effect_f1",
    "test/span_signal_f1",
    "test/pair_f1",
    "test/joint_f1",
)
PLOT_METRICS = ("test/span_f1", "test/seq_f1")
SEED = "seed"


@dataclass
class Job:
    """One job directory of a sweep."""

    path: Path
    overrides: dict[str, Any]  # from .hydra/overrides.yaml, e.g. {"pooling": "mean", "alpha": 3}
    config: DictConfig  # .hydra/config.yaml (unresolved, as Hydra saved it)
    choices: dict[str, Any]  # config group choices, e.g. {"model": "tiny_bert", "freeze": "none"}
    metrics: dict[str, float] | None  # None when the job wrote no metrics.json (failed, running)

    def setting(self, key: str) -> Any:
        """The job's value for an override key, also when it was not overridden in this job."""
        if key in self.overrides:
            return self.overrides[key]
        if key in self.choices:
            return self.choices[key]
        return OmegaConf.select(self.config, key, throw_on_resolution_failure=False)

    @property
    def objective_keys(self) -> list[str]:
        return objective_keys(self.config)

    @property
    def objective(self) -> float:
        return objective(self.metrics or {}, self.objective_keys)


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def load_job(path: Path) -> Job:
    """Read one job directory (the one holding ``.hydra/``)."""
    hydra_dir = path / ".hydra"
    parsed = OverridesParser.create().parse_overrides(
        list(OmegaConf.load(hydra_dir / "overrides.yaml"))
    )
    overrides = {o.key_or_group: _hashable(o.value()) for o in parsed if not o.is_delete()}
    hydra_file = hydra_dir / "hydra.yaml"
    choices = {}
    if hydra_file.is_file():
        runtime = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices")
        choices = {k: v for k, v in (runtime or {}).items() if not k.startswith("hydra/")}
    metrics_file = path / "metrics.json"
    metrics = None
    if metrics_file.is_file():
        raw = json.loads(metrics_file.read_text())
        metrics = {k: float(v) for k, v in raw.items() if "/" in k and isinstance(v, int | float)}
    config = OmegaConf.load(hydra_dir / "config.yaml")
    return Job(path, overrides, config, choices, metrics)


def find_jobs(dirs: list[Path]) -> list[Job]:
    """Every job below the given directories (multirun dirs, or folders holding several)."""
    found = (
        p.parent.parent.resolve() for d in dirs for p in Path(d).glob("**/.hydra/overrides.yaml")
    )
    paths = sorted(set(found), key=_natural_key)
    return [load_job(p) for p in paths]


def _natural_key(path: Path) -> list:
    """Sort job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in the order they were first given."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    return [k for k in keys if len({_hashable(job.setting(k)) for job in jobs}) > 1]


def common_settings(jobs: list[Job], swept: list[str]) -> dict[str, Any]:
    """Overrides shared by every job (``model=tiny_bert``, ``trainer.max_steps=5``…)."""
    keys = dict.fromkeys(k for job in jobs for k in job.overrides if k not in swept)
    return {k: jobs[0].setting(k) for k in keys}


def job_table(jobs: list[Job], swept: list[str], metrics: list[str], root: Path) -> pd.DataFrame:
    """One row per finished job: its directory, swept settings, objective and metrics."""
    rows = []
    for job in jobs:
        if job.metrics is None:
            continue
        row: dict[str, Any] = {"job": _relative(job.path, root)}
        row.update({k: job.setting(k) for k in swept})
        row["objective"] = job.objective
        row.update({m: job.metrics.get(m, math.nan) for m in metrics})
        rows.append(row)
    table = pd.DataFrame(rows, columns=["job", *swept, "objective", *metrics])
    return table.sort_values("objective", ascending=False, na_position="last", kind="stable")


def seed_summary(table: pd.DataFrame, swept: list[str], values: list[str]) -> pd.DataFrame:
    """Mean and std over seeds of ``values`` for each setting of the other swept keys."""
    keys = [k for k in swept if k != SEED]
    grouped = table.groupby(keys, dropna=False, sort=False) if keys else table.groupby(lambda _: 0)
    summary = grouped[values].agg(["mean", "std"])
    summary.columns = [f"{value} {stat}" for value, stat in summary.columns]
    summary["seeds"] = grouped.size()
    summary = summary.sort_values("objective mean", ascending=False, na_position="last")
    return summary.reset_index(drop=not keys)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _format_seed_table(summary: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    out = summary[keys].copy()
    out["seeds"] = summary["seeds"]
    for value in values:
        mean, std = summary[f"{value} mean"], summary[f"{value} std"]
        out[value] = [
            f"{m:.4f} ± {s:.4f}" if not math.isnan(s) else f"{m:.4f}"
            for m, s in zip(mean, std, strict=True)
        ]
    return out


def plot_metric(table: pd.DataFrame, metric: str, x: str, lines: list[str], out_file: Path) -> Path:
    """``metric`` against ``x``, one line per combination of ``lines`` (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = list(table.groupby(lines, dropna=False, sort=True)) if lines else [((), table)]
    scattered = bool(lines) and all(part[x].nunique() <= 1 for _, part in groups)
    if scattered:
        # a search: each job its own combination of the other settings, so there are no lines
        # to draw, only one point per job
        lines, groups = [], [((), table)]
    for name, part in groups:
        stats = part.groupby(x, sort=True)[metric].agg(["mean", "std"])
        label = ", ".join(f"{k}={v}" for k, v in zip(lines, _as_tuple(name), strict=True))
        numeric = pd.api.types.is_numeric_dtype(table[x])
        positions = list(stats.index) if numeric else [str(v) for v in stats.index]
        ax.errorbar(
            positions,
            stats["mean"],
            yerr=stats["std"],
            marker="o",
            capsize=3,
            linestyle="none" if scattered else "-",
            label=label or None,
        )
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against {x}")
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out_file, dpi=120, bbox_inches="tight")  # the legend sits outside the axes
    plt.close(fig)
    return out_file


def _as_tuple(name: Any) -> tuple:
    return name if isinstance(name, tuple) else (name,)


def choose_x(table: pd.DataFrame, swept: list[str], preferred: str) -> str | None:
    """The plot's x axis: ``preferred`` if swept, else the first numeric swept key, else the first."""
    candidates = [k for k in swept if k != SEED]
    if not candidates:
        return None
    if preferred in candidates:
        return preferred
    numeric = [k for k in candidates if pd.api.types.is_numeric_dtype(table[k])]
    return (numeric or candidates)[0]


def write_report(
    dirs: list[Path], out_dir: Path, x: str = "alpha", all_metrics: bool = False
) -> Path:
    """Write ``report.md``, ``report.csv`` and the plots into ``out_dir``; return report.md."""
    jobs = find_jobs(dirs)
    if not jobs:
        raise FileNotFoundError(f"no Hydra job (.hydra/overrides.yaml) under {dirs}")
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.commonpath([Path(d).resolve() for d in dirs]))
    finished = [j for j in jobs if j.metrics is not None]
    swept = swept_keys(jobs)
    every_metric = sorted({m for j in finished for m in j.metrics or {}})
    test_metrics = [m for m in every_metric if m.startswith("test/")]
    shown = test_metrics if all_metrics else [m for m in HEADLINE_METRICS if m in test_metrics]
    full = job_table(jobs, swept, every_metric, root)
    full.to_csv(out_dir / "report.csv", index=False)
    table = full[["job", *swept, "objective", *shown]]

    objectives = sorted({" + ".join(j.objective_keys) for j in finished})
    lines = [
        "# Sweep report",
        "",
        f"Directories: {', '.join(f'`{d}`' for d in dirs)}",
        "",
        f"Jobs: {len(jobs)}, finished (with metrics.json): {len(finished)}.",
        f"Objective (higher is better, rows sorted by it): {' | '.join(objectives)}.",
    ]
    missing = ", ".join(f"`{_relative(j.path, root)}`" for j in jobs if j.metrics is None)
    if missing:
        lines.append(f"No metrics.json (failed or still running): {missing}.")
    common = common_settings(jobs, swept)
    if common:
        lines.append(
            "Common overrides: " + ", ".join(f"`{k}={v}`" for k, v in common.items()) + "."
        )
    # settings with 4 significant digits (a learning rate of 1.5e-4 is not 0.0001), metrics
    # with 4 decimals
    formats = ["", *(".4g" for _ in swept), *(".4f" for _ in ["objective", *shown])]
    lines += ["", "## Jobs", "", table.to_markdown(index=False, floatfmt=formats), ""]
    if SEED in swept and len(table):
        values = ["objective", *shown]
        keys = [k for k in swept if k != SEED]
        summary = seed_summary(table, swept, values)
        lines += [
            "## Mean ± std over seeds",
            "",
            _format_seed_table(summary, keys, values).to_markdown(index=False),
            "",
        ]
    x_key = choose_x(table, swept, x) if len(table) else None
    # the objective (validation: what a choice is made on) first, then the test figures
    plotted = [m for m in ("objective", *PLOT_METRICS) if m in table and table[m].notna().any()]
    if x_key is not None and plotted:
        others = [k for k in swept if k not in (x_key, SEED)]
        lines += ["## Plots", ""]
        for metric in plotted:
            png = out_dir / f"{metric.replace('/', '_')}_vs_{x_key.replace('/', '_')}.png"
            plot_metric(table, metric, x_key, others, png)
            lines += [f"![{metric} against {x_key}]({png.name})", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report


def log_report_to_wandb(
    out_dir: Path, project: str, group: str | None = None, entity: str | None = None
) -> str:
    """Log ``report.md``, ``report.csv`` and the plots of ``out_dir`` to a new W&B run as one
    ``sweep-report`` artifact, and the job table as a W&B table; return the artifact's name."""
    import wandb

    files = [out_dir / "report.md", out_dir / "report.csv", *sorted(out_dir.glob("*.png"))]
    run = wandb.init(
        project=project,
        entity=entity,
        group=group,
        job_type="sweep-report",
        name=f"report-{out_dir.resolve().name}",
        dir=str(out_dir),
    )
    try:
        artifact = wandb.Artifact(f"sweep-report-{run.id}", type="sweep-report")
        for path in files:
            artifact.add_file(str(path))
        run.log_artifact(artifact)
        run.log({"sweep_report": wandb.Table(dataframe=pd.read_csv(out_dir / "report.csv"))})
    finally:
        run.finish()
    return artifact.name


def main(argv: list[str] | None = None) -> Path:
    """Command line: ``python -m causalmine.report DIR [DIR …] [--out DIR] [--x KEY] [--all-metrics]``."""
    parser = argparse.ArgumentParser(prog="python -m causalmine.report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun directories")
    parser.add_argument("--out", type=Path, help="where to write the report (default: first DIR)")
    parser.add_argument("--x", default="alpha", help="swept key for the plots' x axis")
    parser.add_argument("--all-metrics", action="store_true", help="a column for every test metric")
    parser.add_argument("--wandb-project", help="also log the report to this W&B project")
    parser.add_argument("--wandb-group", help="the W&B group of that run (e.g. the sweep's)")
    parser.add_argument("--wandb-entity", help="the W&B entity (default: yours)")
    args = parser.parse_args(argv)
    out_dir = args.out or args.dirs[0]
    report = write_report(args.dirs, out_dir, args.x, args.all_metrics)
    print(report)
    if args.wandb_project:
        name = log_report_to_wandb(out_dir, args.wandb_project, args.wandb_group, args.wandb_entity)
        print(f"logged to W&B as artifact {name}")
    return report


if __name__ == "__main__":
    main()
