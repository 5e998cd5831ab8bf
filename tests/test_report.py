"""The sweep report on a synthetic multirun directory (no training)."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from causalmine.report import main

POOLINGS = ("cls", "mean", "pooler")
ALPHAS = (1, 3)
SEEDS = (1, 2)


def _scores(pooling: str, alpha: int, seed: int) -> dict[str, float]:
    base = {"cls": 0.50, "mean": 0.60, "pooler": 0.55}[pooling] + 0.05 * alpha
    return {
        "val/seq_f1": base + 0.01 * seed,
        "val/span_f1": base / 2,
        "test/seq_f1": base - 0.02 * seed,
        "test/span_f1": base / 3 + 0.01 * seed,
        "test/joint_f1": base / 2,
    }


def _write_job(job: Path, overrides: list[str], config: dict, metrics: dict | None) -> None:
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    choices = {"hydra": {"runtime": {"choices": {"model": "tiny_bert", "freeze": "none"}}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(choices))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps({**metrics, "data": {"splits": {}}}))


@pytest.fixture
def sweep(tmp_path) -> Path:
    """12 finished jobs (pooling × alpha × seed) and one that wrote no metrics.json."""
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00_123"
    grid = list(itertools.product(POOLINGS, ALPHAS, SEEDS))
    for number, (pooling, alpha, seed) in enumerate(grid):
        overrides = ["model=tiny_bert", f"pooling={pooling}", f"alpha={alpha}", f"seed={seed}"]
        config = {"pooling": pooling, "alpha": alpha, "seed": seed, "monitor": "val/joint_f1"}
        config["objective"] = ["val/seq_f1", "val/span_f1"]
        _write_job(root / str(number), overrides, config, _scores(pooling, alpha, seed))
    config = {"pooling": "cls", "alpha": 5, "seed": 1, "monitor": "val/joint_f1"}
    _write_job(root / "12", ["model=tiny_bert", "pooling=cls", "alpha=5", "seed=1"], config, None)
    return root


def _section(report: str, title: str) -> list[str]:
    lines = report.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    return [line for line in lines if line.startswith("|")][2:]  # without header and rule


def test_report_has_a_row_per_job_sorted_by_objective_and_plots(sweep, tmp_path):
    out = tmp_path / "out"
    report_file = main([str(sweep), "--out", str(out)])
    report = report_file.read_text()

    rows = _section(report, "Jobs")
    assert len(rows) == 12
    objectives = [
        float(r.split("|")[5]) for r in rows
    ]  # | job | pooling | alpha | seed | objective
    assert objectives == sorted(objectives, reverse=True)
    best = _scores("mean", 3, 2)
    assert objectives[0] == pytest.approx(best["val/seq_f1"] + best["val/span_f1"], abs=1e-4)
    assert "`12`" in report and "No metrics.json" in report
    assert "`model=tiny_bert`" in report  # common, not a column

    for png in ("objective_vs_alpha.png", "test_span_f1_vs_alpha.png", "test_seq_f1_vs_alpha.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in report

    table = pd.read_csv(out / "report.csv")
    assert len(table) == 12 and {"pooling", "alpha", "seed", "val/span_f1"} <= set(table.columns)


def test_report_keeps_small_settings_legible(tmp_path):
    """A swept learning rate keeps its significant digits; the metrics keep four decimals."""
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00_123"
    for number, lr in enumerate((1.4532e-4, 3.1e-5)):
        config = {"optim": {"lr": lr}, "seed": 1, "objective": ["val/joint_f1"]}
        metrics = {"val/joint_f1": 0.5 + lr, "test/span_f1": 0.123456}
        _write_job(root / str(number), [f"optim.lr={lr}"], config, metrics)
    rows = _section(main([str(root), "--out", str(tmp_path / "out")]).read_text(), "Jobs")
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
    assert [c[1] for c in cells] == ["0.0001453", "3.1e-05"]
    assert [c[2] for c in cells] == ["0.5001", "0.5000"] and cells[0][3] == "0.1235"


def test_report_averages_over_seeds(sweep, tmp_path):
    report = main([str(sweep), "--out", str(tmp_path / "out")]).read_text()
    rows = _section(report, "Mean ± std over seeds")
    assert len(rows) == 6
    cells = {tuple(c.strip() for c in r.strip("|").split("|")[:2]): r for r in rows}
    seq = [_scores("pooler", 1, s)["test/seq_f1"] for s in SEEDS]
    expected = f"{statistics.mean(seq):.4f} ± {statistics.stdev(seq):.4f}"
    assert expected in cells[("pooler", "1")]


def test_report_reads_several_sweeps_and_fails_clearly_on_none(sweep, tmp_path):
    other = tmp_path / "multiruns" / "second"
    _write_job(
        other / "0",
        ["model=tiny_bert", "pooling=mean", "alpha=2"],
        {"pooling": "mean", "alpha": 2, "seed": 42, "monitor": "val/joint_f1"},
        _scores("mean", 2, 0),
    )
    report = main([str(sweep), str(other), "--out", str(tmp_path / "both")]).read_text()
    assert len(_section(report, "Jobs")) == 13
    with pytest.raises(FileNotFoundError, match="no Hydra job"):
        main([str(tmp_path / "empty")])


def test_report_is_logged_to_wandb_as_an_artifact(sweep, tmp_path, monkeypatch):
    """Offline W&B: one run of job type sweep-report holding report.md, report.csv and plots."""
    from tests.test_wandb import _records

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    out = tmp_path / "report"
    main([str(sweep), "--out", str(out), "--wandb-project", "causalmine-tests"])
    [run] = out.glob("wandb/offline-run-*")
    run_id = run.name.rsplit("-", 1)[1]
    records = _records(run)
    artifacts = {
        (a["name"], a["type"]): a
        for r in records
        if r["type"] == "artifact"
        for a in [r["artifact"]]
    }
    report = json.dumps(artifacts[(f"sweep-report-{run_id}", "sweep-report")])
    assert all(name in report for name in ("report.md", "report.csv", ".png"))
    assert (f"run-{run_id}-sweep_report", "run_table") in artifacts  # the job table


def test_a_search_is_plotted_as_one_point_per_job(tmp_path, monkeypatch):
    """Random or TPE trials share no other settings, so no line joins them and no legend lists
    every job; a grid keeps one line per combination of the other settings."""
    import matplotlib.pyplot as plt

    from causalmine.report import plot_metric

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    search = pd.DataFrame(
        {"optim.lr": [3e-5, 1e-4, 2e-4], "alpha": [0.5, 2.0, 1.0], "objective": [0.6, 0.7, 0.65]}
    )
    plot_metric(search, "objective", "optim.lr", ["alpha"], tmp_path / "search.png")
    grid = pd.DataFrame(
        {
            "alpha": [1, 3, 1, 3],
            "pooling": ["cls", "cls", "mean", "mean"],
            "objective": [1, 2, 3, 4],
        }
    )
    plot_metric(grid, "objective", "alpha", ["pooling"], tmp_path / "grid.png")
    (search_ax,), (grid_ax,) = (f.axes for f in figures)
    assert search_ax.get_legend() is None
    assert {line.get_linestyle() for line in search_ax.get_lines()} == {"None"}  # points, caps
    assert [t.get_text() for t in grid_ax.get_legend().get_texts()] == [
        "pooling=cls",
        "pooling=mean",
    ]
    assert [line.get_linestyle() for line in grid_ax.get_lines()].count("-") == 2  # one per pooling
