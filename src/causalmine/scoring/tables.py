"""Human-readable result tables (rich) for the terminal: classification and span metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

# (label, metric key stem, suffix): "{stem}_f1{suffix}" etc.
SPAN_ROWS = (
    ("Overall (CNC 2022 official)", "span", ""),
    ("Cause", "span_cause", ""),
    ("Effect", "span_effect", ""),
    ("Signal", "span_signal", ""),
    ("Overall (pooled, ours)", "span", "_pooled"),
    ("Overall (CNC 2023, FairEval)", "span", "_2023"),
    ("Multi-relation sentences (official)", "span_multi", ""),
)
CLASSIFICATION_COLUMNS = ("f1", "precision", "recall", "accuracy", "mcc")


def span_table(metrics: dict[str, float], scope: str, title: str) -> Table:
    """Rows: the official Overall and per kind, the pooled and 2023 Overall, and the official
    figures on sentences with several relations. ``scope`` is ``test``, ``test/<corpus>`` or
    ``""`` for unprefixed names (``python -m causalmine.score``)."""
    table = Table(title=title)
    for column in ("spans", "precision", "recall", "F1", "gold spans"):
        table.add_column(column, justify="left" if column == "spans" else "right")
    for label, stem, suffix in SPAN_ROWS:
        key = f"{scope}/{stem}" if scope else stem
        if f"{key}_f1{suffix}" not in metrics:
            continue
        values = (f"{metrics[f'{key}_{m}{suffix}']:.4f}" for m in ("precision", "recall", "f1"))
        table.add_row(label, *values, f"{metrics.get(f'{key}_support', float('nan')):.0f}")
    return table


def print_span_table(metrics: dict[str, float], title: str, scope: str = "") -> None:
    Console().print(span_table(metrics, scope, title))


def classification_table(metrics: dict[str, float], scopes: list[str], title: str) -> Table:
    """One row per task and scope (``test`` = all data, ``test/because`` = one corpus)."""
    table = Table(title=title)
    for column in ("data", "task", "F1", "precision", "recall", "accuracy", "MCC"):
        table.add_column(column, justify="left" if column in ("data", "task") else "right")
    for scope in scopes:
        for task, name in (("seq", "sequence"), ("pair", "pair")):
            if f"{scope}/{task}_f1" in metrics:
                table.add_row(
                    scope,
                    name,
                    *(f"{metrics[f'{scope}/{task}_{m}']:.4f}" for m in CLASSIFICATION_COLUMNS),
                )
    return table


def scopes_of(metrics: dict[str, float], stage: str) -> list[str]:
    """``stage`` followed by ``stage/<corpus>`` for every corpus that has metrics."""
    corpora = sorted(
        {k.split("/")[1] for k in metrics if k.startswith(f"{stage}/") and k.count("/") == 2}
    )
    return [stage, *(f"{stage}/{c}" for c in corpora)]


def print_results(metrics: dict[str, float], stage: str, title: str) -> None:
    """Print the classification and span tables of one split, overall and per corpus."""
    console = Console()
    scopes = scopes_of(metrics, stage)
    if any(f"{s}/{t}_f1" in metrics for s in scopes for t in ("seq", "pair")):
        console.print(classification_table(metrics, scopes, f"{title}: classification"))
    for scope in scopes:
        if f"{scope}/span_f1" in metrics:
            console.print(span_table(metrics, scope, f"{title}: spans ({scope})"))
