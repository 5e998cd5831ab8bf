"""Span scoring as a torchmetrics ``Metric``: sentence tallies are summed across devices under DDP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchmetrics import Metric

from causalmine.schema import Relation
from causalmine.scoring.span_scoring import KINDS, TALLY_WIDTH, summarize, tally_corpus


class SpanF1(Metric):
    """Accumulates the additive span tally of every scored sentence (see ``span_scoring``)."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "tally",
            default=torch.zeros(len(KINDS), TALLY_WIDTH, dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def update(
        self,
        words: Sequence[list[str]],
        gold: Sequence[Sequence[Relation] | None],
        predicted: Sequence[Sequence[Relation]],
    ) -> None:
        """``gold[i]`` ``None`` or empty: the sentence has no gold relation and is not scored."""
        total = tally_corpus(words, gold, predicted)
        self.tally += torch.from_numpy(total).to(self.tally.device)

    def compute(self) -> dict[str, float]:
        return summarize(self.tally.cpu().numpy())
