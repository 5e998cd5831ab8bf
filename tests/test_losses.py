"""Loss masking: rows without a label for a task contribute nothing to that task's loss; learned
task weights (``loss.weighting=uncertainty``) follow Kendall et al. (2018); matched span
assignment (``loss.span_assignment=matched``) gives each head the relation it fits best."""

from __future__ import annotations

import itertools

import pytest
import torch

from causalmine.model.losses import (
    TASKS,
    LossWeights,
    masked_cross_entropy,
    match_relations_to_heads,
    unified_loss,
)
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


def _two_sentences(pair_labels: list[int]) -> tuple:
    """Random logits of every head for two sentences (3 span heads, 4 tokens) and a batch
    labelling them: sequence labels 1, 0, ``pair_labels``, random tags."""
    torch.manual_seed(0)
    seq, pair = torch.randn(2, 2), torch.randn(2, 2)
    ce, sig = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 3)
    batch = _batch(
        [1, 0],
        pair_labels,
        torch.randint(0, 5, (2, 3, 4)).tolist(),
        torch.randint(0, 3, (2, 3, 4)).tolist(),
    )
    return seq, pair, ce, sig, batch


def test_unified_loss_combines_weighted_terms():
    seq, pair, ce, sig, batch = _two_sentences([IGNORE_INDEX, 1])
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
    s = torch.zeros(len(TASKS), dtype=torch.float64, requires_grad=True)
    # the objective is convex in s: L-BFGS solves it to the tolerance asked (Adam at a constant
    # rate only circles the minimum, within about its step size)
    optimizer = torch.optim.LBFGS(
        [s],
        max_iter=100,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def total() -> torch.Tensor:
        optimizer.zero_grad()
        loss = unified_loss(*logits, batch, weights, s).total
        loss.backward()
        return loss

    optimizer.step(total)
    parts = unified_loss(*logits, batch, weights, s)
    task_losses = torch.stack([parts.seq, parts.span, parts.pair]).detach().double()
    expected = torch.log(2 * torch.tensor([3.0, 0.5, 1.0], dtype=torch.float64) * task_losses)
    assert torch.allclose(s.detach(), expected, atol=1e-5)


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


def _span_batch(num_examples: int, heads: int = 3, tokens: int = 6, seed: int = 0):
    """Random span logits and labels; token 0 of every example is an unlabelled subword."""
    generator = torch.Generator().manual_seed(seed)
    ce = torch.randn(num_examples, heads, tokens, 5, generator=generator)
    sig = torch.randn(num_examples, heads, tokens, 3, generator=generator)
    ce_labels = torch.randint(0, 5, (num_examples, heads, tokens), generator=generator)
    sig_labels = torch.randint(0, 3, (num_examples, heads, tokens), generator=generator)
    ce_labels[:, :, 0] = sig_labels[:, :, 0] = IGNORE_INDEX
    return ce, sig, ce_labels, sig_labels


def _span_loss(ce, sig, ce_labels, sig_labels, assignment: str) -> torch.Tensor:
    seq = torch.zeros(ce.shape[0], 2)
    unlabelled = [IGNORE_INDEX] * ce.shape[0]
    batch = _batch(unlabelled, unlabelled, ce_labels.tolist(), sig_labels.tolist())
    weights = LossWeights(span_assignment=assignment)
    return unified_loss(seq, seq, ce, sig, batch, weights).span


def test_matched_assignment_gives_each_head_the_relation_it_fits():
    # head 0 predicts "cause at word 1", head 1 "cause at word 2"; the label rows come the
    # other way round, and the third row is an all-O padding row
    ce = torch.full((1, 3, 3, 5), -5.0)
    ce[0, :, :, 0] = 5.0  # every head: O everywhere ...
    ce[0, 0, 1], ce[0, 1, 2] = ce[0, 0, 1].flip(0), ce[0, 1, 2].flip(0)  # ... but these two words
    sig = torch.full((1, 3, 3, 3), -5.0)
    sig[..., 0] = 5.0  # no signal words
    ce_labels = torch.tensor([[[0, 0, 4], [0, 4, 0], [0, 0, 0]]])  # id 4: the flipped label
    sig_labels = torch.zeros(1, 3, 3, dtype=torch.long)
    matched, _ = match_relations_to_heads(ce, sig, ce_labels, sig_labels)
    assert matched.tolist() == [[[0, 4, 0], [0, 0, 4], [0, 0, 0]]]
    ordered_loss = _span_loss(ce, sig, ce_labels, sig_labels, "ordered")
    matched_loss = _span_loss(ce, sig, ce_labels, sig_labels, "matched")
    assert matched_loss < ordered_loss / 10


def test_matched_span_loss_is_the_lowest_over_every_ordering_of_every_sentence():
    """Brute force: try all 6^3 ways to order three sentences' three label rows."""
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=3)
    orderings = list(itertools.permutations(range(3)))
    lowest = min(
        _span_loss(
            ce,
            sig,
            torch.stack([ce_labels[b, list(p)] for b, p in enumerate(per_example)]),
            torch.stack([sig_labels[b, list(p)] for b, p in enumerate(per_example)]),
            "ordered",
        )
        for per_example in itertools.product(orderings, repeat=3)
    )
    assert torch.isclose(_span_loss(ce, sig, ce_labels, sig_labels, "matched"), lowest)


def test_matched_span_loss_ignores_the_order_of_the_label_rows():
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=4, seed=1)
    reordered = [2, 0, 1]
    original = _span_loss(ce, sig, ce_labels, sig_labels, "matched")
    shuffled = _span_loss(ce, sig, ce_labels[:, reordered], sig_labels[:, reordered], "matched")
    assert torch.isclose(original, shuffled)
    assert not torch.isclose(
        _span_loss(ce, sig, ce_labels, sig_labels, "ordered"),
        _span_loss(ce, sig, ce_labels[:, reordered], sig_labels[:, reordered], "ordered"),
    )


def test_matched_assignment_keeps_unlabelled_rows_and_gradients():
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=2, seed=2)
    ce_labels[1] = sig_labels[1] = IGNORE_INDEX  # a pair example: no span labels at all
    matched_ce, matched_sig = match_relations_to_heads(ce, sig, ce_labels, sig_labels)
    assert torch.equal(matched_ce[1], ce_labels[1]) and torch.equal(matched_sig[1], sig_labels[1])
    # each sentence's rows are a reordering of its own rows
    assert sorted(map(tuple, matched_ce[0].tolist())) == sorted(map(tuple, ce_labels[0].tolist()))
    ce.requires_grad_()
    _span_loss(ce, sig, ce_labels, sig_labels, "matched").backward()
    assert torch.all(ce.grad[1] == 0) and ce.grad[0].abs().sum() > 0


def test_matched_assignment_survives_infinite_logits_at_ignored_positions():
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=1, seed=3)
    ce[0, :, 0, 1] = float("-inf")  # token 0 is ignored: it must not poison the costs
    lowest = min(
        _span_loss(ce, sig, ce_labels[:, list(p)], sig_labels[:, list(p)], "ordered")
        for p in itertools.permutations(range(3))
    )
    assert torch.isclose(_span_loss(ce, sig, ce_labels, sig_labels, "matched"), lowest)


def test_non_finite_logits_leave_the_labels_alone_and_the_loss_non_finite():
    """The non-finite guard must see the bad step, not a solver error about the costs."""
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=2, seed=4)
    ce[1, 2, 3] = float("nan")
    matched_ce, matched_sig = match_relations_to_heads(ce, sig, ce_labels, sig_labels)
    assert torch.equal(matched_ce, ce_labels) and torch.equal(matched_sig, sig_labels)
    assert not torch.isfinite(_span_loss(ce, sig, ce_labels, sig_labels, "matched"))


def test_leading_matching_keeps_a_sentences_relations_on_its_first_heads():
    # head 0 predicts nothing, head 1 relation B, head 2 relation A; the rows are A, B, O
    ce = torch.full((1, 3, 3, 5), -5.0)
    ce[0, :, :, 0] = 5.0
    ce[0, 2, 1], ce[0, 1, 2] = ce[0, 2, 1].flip(0), ce[0, 1, 2].flip(0)
    sig = torch.full((1, 3, 3, 3), -5.0)
    sig[..., 0] = 5.0
    ce_labels = torch.tensor([[[0, 4, 0], [0, 0, 4], [0, 0, 0]]])
    sig_labels = torch.zeros(1, 3, 3, dtype=torch.long)
    free, _ = match_relations_to_heads(ce, sig, ce_labels, sig_labels)
    assert free.tolist() == [[[0, 0, 0], [0, 0, 4], [0, 4, 0]]]  # head 0 left with nothing
    leading, _ = match_relations_to_heads(ce, sig, ce_labels, sig_labels, leading=True)
    assert leading.tolist() == [[[0, 4, 0], [0, 0, 4], [0, 0, 0]]]  # heads 0-1 keep A and B


def test_leading_span_loss_is_the_lowest_over_orderings_that_keep_relations_first():
    """Brute force: each sentence holds two relations and an all-O row; its relations may swap
    between heads 0 and 1, never move to head 2."""
    ce, sig, ce_labels, sig_labels = _span_batch(num_examples=3, seed=5)
    ce_labels[:, :2, 1:] = ce_labels[:, :2, 1:].clamp(min=1)  # rows 0-1: relations
    ce_labels[:, 2, 1:] = sig_labels[:, 2, 1:] = 0  # row 2: all-O
    lowest = min(
        _span_loss(
            ce,
            sig,
            torch.stack([ce_labels[b, [*p, 2]] for b, p in enumerate(per_example)]),
            torch.stack([sig_labels[b, [*p, 2]] for b, p in enumerate(per_example)]),
            "ordered",
        )
        for per_example in itertools.product([(0, 1), (1, 0)], repeat=3)
    )
    leading = _span_loss(ce, sig, ce_labels, sig_labels, "matched_leading")
    assert torch.isclose(leading, lowest)
    assert _span_loss(ce, sig, ce_labels, sig_labels, "matched") <= leading


def test_unknown_span_assignment_is_rejected():
    with pytest.raises(
        ValueError, match=r"loss\.span_assignment must be one of ordered, matched, matched_leading"
    ):
        LossWeights(span_assignment="greedy")


def test_label_smoothing_is_torchs_on_the_labelled_rows_and_plain_at_zero():
    torch.manual_seed(0)
    logits = torch.randn(4, 2)
    labels = torch.tensor([1, IGNORE_INDEX, 0, 1])
    kept = labels != IGNORE_INDEX
    for smoothing in (0.0, 0.1, 0.3):
        expected = torch.nn.functional.cross_entropy(
            logits[kept], labels[kept], label_smoothing=smoothing
        )
        assert torch.isclose(masked_cross_entropy(logits, labels, smoothing), expected)
    # a confident right answer costs more once smoothed: the target keeps 1 - x/2 on its class
    sure = torch.tensor([[-10.0, 10.0]])
    assert masked_cross_entropy(sure, torch.tensor([1]), 0.1) > 0.4
    assert masked_cross_entropy(sure, torch.tensor([1])) < 1e-6


def test_sequence_label_smoothing_touches_the_sequence_term_alone():
    seq, pair, ce, sig, batch = _two_sentences([0, 1])
    plain = unified_loss(seq, pair, ce, sig, batch, LossWeights())
    smoothed = unified_loss(seq, pair, ce, sig, batch, LossWeights(seq_label_smoothing=0.2))
    expected = torch.nn.functional.cross_entropy(seq, torch.tensor([1, 0]), label_smoothing=0.2)
    assert torch.isclose(smoothed.seq, expected) and not torch.isclose(smoothed.seq, plain.seq)
    assert torch.equal(smoothed.span, plain.span) and torch.equal(smoothed.pair, plain.pair)


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, True])
def test_label_smoothing_outside_zero_to_one_is_rejected(smoothing):
    with pytest.raises(ValueError, match=r"loss.seq_label_smoothing must be a number in \[0, 1\)"):
        LossWeights(seq_label_smoothing=smoothing)


def test_a_module_smooths_its_training_loss_and_evaluates_plainly(data_root):
    from .test_gradient_surgery import _module_and_loader

    module, loader = _module_and_loader(data_root, "none", loss={"seq_label_smoothing": 0.1})
    plain_module, _ = _module_and_loader(data_root, "none")
    batch = next(iter(loader))
    module.eval()
    with torch.no_grad():
        out = module(batch)
        evaluated = module.compute_losses(out, batch)
        module.train()
        trained = module.compute_losses(out, batch)
    targets = batch["seq_labels"]
    assert torch.isclose(evaluated.seq, masked_cross_entropy(out.seq_logits, targets))
    assert torch.isclose(trained.seq, masked_cross_entropy(out.seq_logits, targets, 0.1))
    assert not torch.isclose(trained.seq, evaluated.seq)
    assert module.loss_weights.for_evaluation() == plain_module.loss_weights


def test_the_span_warm_up_trains_alike_with_or_without_smoothing(data_root):
    """The sequence loss is out during the warm-up, so its smoothing changes no step there: the
    premise of pairing a smoothed run's warm-up epochs with its baseline's (RESULTS §8x)."""
    from .test_gradient_surgery import _module_and_loader

    steps = []
    for smoothing in (0.0, 0.1):
        loss = {"seq_start_epoch": 3, "seq_label_smoothing": smoothing}
        module, loader = _module_and_loader(data_root, "none", loss=loss)
        batch = next(iter(loader))
        losses = module.train().compute_losses(module(batch), batch)  # epoch 0: in the warm-up
        losses.total.backward()
        grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
        steps.append((losses, grads))
    (plain, plain_grads), (smoothed, smoothed_grads) = steps
    assert not torch.isclose(plain.seq, smoothed.seq)  # the term differs, its weight is 0
    assert torch.equal(plain.total, smoothed.total)
    assert plain_grads.keys() == smoothed_grads.keys()
    assert all(torch.equal(plain_grads[n], smoothed_grads[n]) for n in plain_grads)
