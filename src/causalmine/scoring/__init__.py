"""Scoring: CNC span scoring (official 2022, pooled, 2023) and binary classification metrics."""

from causalmine.scoring.classification import binary_metrics
from causalmine.scoring.span_metric import SpanF1
from causalmine.scoring.span_scoring import score_corpus, summarize

__all__ = ["SpanF1", "binary_metrics", "score_corpus", "summarize"]
