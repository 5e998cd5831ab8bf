"""The unified loss: ``alpha * seq + span_weight * sum_k span_k + pair_weight * pair``.

Rows without a label for a task carry -100 and contribute nothing: each term is a mean over
the labelled elements only, and zero (still attached to the graph, so DDP sees every head
used) when a batch has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from causalmine.schema import IGNORE_INDEX
from causalmine.settings import LossWeights


@dataclass
class LossBreakdown:
    total: torch.Tensor
    seq: torch.Tensor
    span: torch.Tensor  # summed over heads
    pair: torch.Tensor
    span_per_head: list[torch.Tensor]


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over elements whose label is not -100; 0 when there are none."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    summed = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (flat_labels != IGNORE_INDEX).sum().clamp(min=1)
    return summed / count


def unified_loss(
    seq_logits: torch.Tensor,
    pair_logits: torch.Tensor,
    cause_effect_logits: torch.Tensor,
    signal_logits: torch.Tensor,
    batch: dict,
    weights: LossWeights,
) -> LossBreakdown:
    """Combine the task losses of one batch (mixed tasks and corpora allowed)."""
    seq = masked_cross_entropy(seq_logits, batch["seq_labels"])
    pair = masked_cross_entropy(pair_logits, batch["pair_labels"])
    per_head = [
        masked_cross_entropy(cause_effect_logits[:, k], batch["cause_effect_labels"][:, k])
        + masked_cross_entropy(signal_logits[:, k], batch["signal_labels"][:, k])
        for k in range(cause_effect_logits.shape[1])
    ]
    span = torch.stack(per_head).sum()
    total = weights.alpha * seq + weights.span_weight * span + weights.pair_weight * pair
    return LossBreakdown(total=total, seq=seq, span=span, pair=pair, span_per_head=per_head)
