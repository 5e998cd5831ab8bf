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
