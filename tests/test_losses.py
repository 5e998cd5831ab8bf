"""Loss masking: rows without a label for a task contribute nothing to that task's loss; learned
task weights (``loss.weighting=uncertainty``) follow Kendall et al. (2018)."""

from __future__ import annotations

import pytest
import torch

from causalmine.model.losses import TASKS, LossWeights, masked_cross_entropy, unified_loss
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


def _all_tasks_batch(pair_labelled: bool = True):
    torch.manual_seed(0)
    logits = (
        torch.randn(2, 2),
        torch.randn(2, 2),
        torch.randn(2, 3, 4, 5),
        torch.randn(2, 3, 4, 3),
    )
    batch = _batch(
        [1, 0],
        [IGNORE_INDEX, 1] if pair_labelled else [IGNORE_INDEX, IGNORE_INDEX],
        torch.randint(0, 5, (2, 3, 4)).tolist(),
        torch.randint(0, 3, (2, 3, 4)).tolist(),
    )
    return logits, batch


def test_learned_weights_start_as_the_fixed_sum():
    logits, batch = _all_tasks_batch()
    weights = LossWeights(alpha=3.0, span_weight=0.5, pair_weight=2.0, weighting="uncertainty")
    learned = unified_loss(*logits, batch, weights, torch.zeros(len(TASKS)))
    fixed = unified_loss(*logits, batch, LossWeights(alpha=3.0, span_weight=0.5, pair_weight=2.0))
    assert torch.isclose(learned.total, fixed.total)


def test_learned_weights_settle_where_kendall_et_al_put_them():
    """With the task losses held fixed, s_t minimises w_t exp(-s_t) L_t + s_t / 2 at
    s_t = log(2 w_t L_t): each task's effective weight becomes 1 / (2 L_t), whatever w_t."""
    logits, batch = _all_tasks_batch()
    weights = LossWeights(alpha=3.0, span_weight=0.5, pair_weight=1.0, weighting="uncertainty")
    s = torch.zeros(len(TASKS), requires_grad=True)
    optimizer = torch.optim.Adam([s], lr=0.05)
    for _ in range(2000):
        optimizer.zero_grad()
        parts = unified_loss(*logits, batch, weights, s)
        parts.total.backward()
        optimizer.step()
    task_losses = torch.stack([parts.seq, parts.span, parts.pair]).detach()
    expected = torch.log(2 * torch.tensor([3.0, 0.5, 1.0]) * task_losses)
    assert torch.allclose(s.detach(), expected, atol=1e-3)


def test_a_task_absent_from_the_batch_or_switched_off_leaves_its_weight_alone():
    logits, batch = _all_tasks_batch(pair_labelled=False)
    seq_logits = logits[0].requires_grad_()
    s = torch.zeros(len(TASKS), requires_grad=True)
    weights = LossWeights(alpha=0.0, weighting="uncertainty")  # no sequence task
    unified_loss(*logits, batch, weights, s).total.backward()
    seq_grad, span_grad, pair_grad = s.grad.tolist()
    assert seq_grad == 0.0 and pair_grad == 0.0  # otherwise s/2 would drag them down every step
    assert span_grad != 0.0
    # the switched-off head is still in the graph (DDP must see every parameter used), at 0
    assert seq_logits.grad is not None and torch.all(seq_logits.grad == 0)


def test_unknown_weighting_is_rejected():
    with pytest.raises(ValueError, match=r"loss\.weighting must be one of fixed, uncertainty"):
        LossWeights(weighting="gradnorm")
