"""Span scoring as a torchmetrics ``Metric``: counts are summed across devices under DDP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from causalmine.data.tags import Relation
from causalmine.metrics.span_scoring import KINDS, SpanCounts, score_sentence, summarize


class SpanF1(Metric):
    """Accumulates CNC span counts (all scored sentences, and those with several relations)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # [subset (all, multi), kind (C, E, S), count (tp, fp, fn)]
        self.add_state(
            "counts", default=torch.zeros(2, len(KINDS), 3, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(
        self, gold: Sequence[Sequence[Relation] | None], predicted: Sequence[Sequence[Relation]]
    ) -> None:
        """``gold[i] is None`` means the sentence has no span annotation and is not scored."""
        delta = torch.zeros(self.counts.shape, dtype=torch.long)  # built on the CPU, moved once
        for g, p in zip(gold, predicted, strict=True):
            if not g:
                continue
            c = score_sentence(g, p)
            row = torch.tensor([[c.tp[k], c.fp[k], c.fn[k]] for k in KINDS], dtype=torch.long)
            delta[0] += row
            if len(g) > 1:
                delta[1] += row
        self.counts += delta.to(self.counts.device)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for subset, prefix in enumerate(("span", "span_multi")):
            counts = SpanCounts()
            for i, k in enumerate(KINDS):
                counts.tp[k], counts.fp[k], counts.fn[k] = (int(v) for v in self.counts[subset, i])
            out.update(summarize(counts, prefix))
        return out
