"""Loss masking: rows without a label for a task contribute nothing to that task's loss."""

from __future__ import annotations

import pytest
import torch

from causalmine.model.losses import LossWeights, masked_cross_entropy, unified_loss
from causalmine.schema import IGNORE_INDEX


def _batch(seq, pair, ce, sig):
    return {
        "seq_labels": torch.tensor(seq),
        "pair_labels": torch.tensor(pair),
        "cause_effect_labels": torch.tensor(ce),
        "signal_labels": torch.tensor(sig),
    }


def test_masked_rows_get_no_gradient():
    logits = torch.randn(3, 2, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.tensor([1, IGNORE_INDEX, 0]))
    loss.backward()
    assert torch.all(logits.grad[1] == 0)
    assert logits.grad[0].abs().sum() > 0
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([1, 0]))
    assert torch.isclose(loss, expected)


def test_all_masked_is_zero_and_still_differentiable():
    logits = torch.randn(4, 2, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((4,), IGNORE_INDEX))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_unified_loss_combines_weighted_terms():
    torch.manual_seed(0)
    seq, pair = torch.randn(2, 2), torch.randn(2, 2)
    ce, sig = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 3)
    batch = _batch(
        [1, 0],
        [IGNORE_INDEX, 1],
        torch.randint(0, 5, (2, 3, 4)).tolist(),
        torch.randint(0, 3, (2, 3, 4)).tolist(),
    )
    parts = unified_loss(
        seq, pair, ce, sig, batch, LossWeights(alpha=3.0, span_weight=0.5, pair_weight=2.0)
    )
    assert len(parts.span_per_head) == 3
    assert torch.isclose(parts.span, sum(parts.span_per_head))
    assert torch.isclose(parts.total, 3.0 * parts.seq + 0.5 * parts.span + 2.0 * parts.pair)
    assert torch.isclose(parts.pair, masked_cross_entropy(pair[1:], torch.tensor([1])))


def test_mixed_task_batch_masks_each_task_separately():
    # row 0: sequence label only; row 1: spans only
    seq = torch.randn(2, 2, requires_grad=True)
    ce = torch.randn(2, 1, 3, 5, requires_grad=True)
    sig = torch.randn(2, 1, 3, 3, requires_grad=True)
    no_spans = [[IGNORE_INDEX] * 3]
    batch = _batch(
        [1, IGNORE_INDEX],
        [IGNORE_INDEX, IGNORE_INDEX],
        [no_spans, [[1, 2, 0]]],
        [no_spans, [[0, 1, 0]]],
    )
    unified_loss(seq, torch.zeros(2, 2), ce, sig, batch, LossWeights()).total.backward()
    assert torch.all(seq.grad[1] == 0) and seq.grad[0].abs().sum() > 0
    assert torch.all(ce.grad[0] == 0) and ce.grad[1].abs().sum() > 0
    assert torch.all(sig.grad[0] == 0)


def test_negative_weights_are_rejected():
    with pytest.raises(ValueError, match="alpha"):
        LossWeights(alpha=-1.0)
