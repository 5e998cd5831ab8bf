"""Binary classification metrics (sequence and pair tasks), synced by torchmetrics."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryF1Score,
    BinaryMatthewsCorrCoef,
    BinaryPrecision,
    BinaryRecall,
)


def binary_metrics(prefix: str) -> MetricCollection:
    """F1, precision, recall, accuracy and MCC with positive class 1, named ``{prefix}f1``…"""
    return MetricCollection(
        {
            "f1": BinaryF1Score(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "accuracy": BinaryAccuracy(),
            "mcc": BinaryMatthewsCorrCoef(),
        },
        prefix=prefix,
    )
