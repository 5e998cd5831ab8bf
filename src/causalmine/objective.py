"""The number a sweep maximises: the sum of the validation metrics named by ``objective``."""

from __future__ import annotations

import math
from typing import Any


def objective_keys(cfg: Any) -> list[str]:
    """The metric names of a run's config: ``objective``, else the checkpoint ``monitor``."""
    keys = cfg.get("objective")
    return list(keys) if keys is not None else [cfg.get("monitor")]


def objective(metrics: dict[str, float], keys: list[str]) -> float:
    """Sum of the named metrics; NaN if one is missing."""
    values = [metrics.get(k) for k in keys]
    return float(sum(values)) if all(v is not None for v in values) else math.nan  # type: ignore[arg-type]


def trial_value(metrics: dict[str, float], keys: list[str], sweeper: str | None) -> float:
    """The objective a job returns to its sweeper. Under an Optuna sweeper a missing metric
    fails the trial with its name: a study cannot store NaN, and the sweeper's own error would
    end the whole search and leave its trials marked as running."""
    value = objective(metrics, keys)
    if math.isnan(value) and "optuna" in (sweeper or "").lower():
        missing = ", ".join(k for k in keys if metrics.get(k) is None)
        raise ValueError(
            f"objective metric {missing} is not among the run's metrics (did validation run? "
            "trainer.limit_val_batches); an Optuna trial needs a number, so this trial fails"
        )
    return value
