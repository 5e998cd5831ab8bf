"""Human-readable result tables (rich) for the terminal: sequence/pair and span metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

SPAN_ROWS = (
    ("Overall (CNC official)", "span", ""),
    ("Overall (micro)", "span", "_micro"),
    ("Cause", "span_cause", ""),
    ("Effect", "span_effect", ""),
    ("Signal", "span_signal", ""),
)


def span_table(metrics: dict[str, float], stage: str, title: str) -> Table:
    """Rows: Overall official / micro, Cause, Effect, Signal, then the same on multi-relation sentences."""
    table = Table(title=title)
    for column in ("spans", "precision", "recall", "F1", "gold spans"):
        table.add_column(column, justify="left" if column == "spans" else "right")
    for subset, label in (("", ""), ("_multi", "several relations: ")):
        for name, base, suffix in SPAN_ROWS:
            key = f"{stage}/{base.replace('span', 'span' + subset, 1)}"
            if f"{key}_f1{suffix}" not in metrics:
                continue
            support = metrics.get(f"{key}_support", float("nan"))
            table.add_row(
                label + name,
                f"{metrics[f'{key}_precision{suffix}']:.4f}",
                f"{metrics[f'{key}_recall{suffix}']:.4f}",
                f"{metrics[f'{key}_f1{suffix}']:.4f}",
                f"{support:.0f}",
            )
    return table


def classification_table(metrics: dict[str, float], stage: str, title: str) -> Table:
    table = Table(title=title)
    for column in ("task", "F1", "precision", "recall", "accuracy", "MCC"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, name in (("seq", "sequence"), ("pair", "pair")):
        if f"{stage}/{task}_f1" in metrics:
            table.add_row(
                name,
                *(
                    f"{metrics[f'{stage}/{task}_{m}']:.4f}"
                    for m in ("f1", "precision", "recall", "accuracy", "mcc")
                ),
            )
    return table


def print_results(metrics: dict[str, float], stage: str, title: str) -> None:
    """Print the classification and span tables of one split (whatever of them it has)."""
    console = Console()
    if any(f"{stage}/{t}_f1" in metrics for t in ("seq", "pair")):
        console.print(classification_table(metrics, stage, f"{title}: classification"))
    if f"{stage}/span_f1" in metrics:
        console.print(span_table(metrics, stage, f"{title}: spans"))
