"""The unified loss: ``alpha * seq + span_weight * sum_k span_k + pair_weight * pair``, or with
learned task weights (``loss.weighting=uncertainty``, :class:`~causalmine.settings.LossWeights`).
With ``loss.span_assignment=matched`` (or ``matched_leading``) each sentence's gold relations are
first reordered to the span heads they fit best (:func:`match_relations_to_heads`). A span
head's term is the cross-entropy of its tags or, with ``model.span_crf``, its CRFs' negative
log-likelihood per word (:func:`crf_negative_log_likelihood`).

Rows without a label for a task carry -100 and contribute nothing: each term is a mean over
the labelled elements only, and zero (still attached to the graph, so DDP sees every head
used) when a batch has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from causalmine.schema import IGNORE_INDEX, TagTransitions
from causalmine.settings import LossWeights


@dataclass
class LossBreakdown:
    total: torch.Tensor
    seq: torch.Tensor
    span: torch.Tensor  # summed over heads
    pair: torch.Tensor
    span_per_head: list[torch.Tensor]
    # each task's share of ``total`` (0 for a task weighted 0), and whether this batch trains
    # it (1.0: weighted above 0 and labelled here, else 0.0): what gradient surgery separates
    terms: dict[str, torch.Tensor]
    trains: dict[str, torch.Tensor]


def masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over elements whose label is not -100; 0 when there are none.
    ``label_smoothing`` as :func:`torch.nn.functional.cross_entropy` takes it."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    flat_labels = labels.reshape(-1)
    summed = F.cross_entropy(
        flat_logits,
        flat_labels,
        ignore_index=IGNORE_INDEX,
        reduction="sum",
        label_smoothing=label_smoothing,
    )
    count = (flat_labels != IGNORE_INDEX).sum().clamp(min=1)
    return summed / count


def crf_negative_log_likelihood(
    logits: torch.Tensor, labels: torch.Tensor, scores: TagTransitions
) -> torch.Tensor:
    """Each head's linear-chain CRF negative log-likelihood of its labelled words' tags, per
    labelled word (as :func:`masked_cross_entropy` is per labelled token): ``[K]``.

    ``logits [batch, K, tokens, labels]`` are the emissions, ``labels [batch, K, tokens]`` the
    tags (-100 off first subwords) and ``scores`` each head's start/step/end scores. Each row's
    labelled positions are gathered, in order, into a left-aligned chain, so the CRF links a
    word to the next word, not to the next subword.

    Written here rather than taken from pytorch-crf: that package runs one Python loop over
    every padded token per CRF, and checks its mask on the host three times per call (2K CRFs
    per step); this runs one loop over the longest sentence's words for all heads at once, the
    sum-product twin of the decoder's Viterbi (``scoring.decode._best_paths``).
    """
    _, heads, _, num_labels = logits.shape
    labelled = labels != IGNORE_INDEX
    counts = labelled.sum(-1)  # [batch, K]
    words = max(int(counts.max()), 1)  # one host sync: the chains are this long at most
    # a stable sort on "not labelled" puts each row's labelled positions first, in order
    order = torch.sort((~labelled).to(torch.uint8), dim=-1, stable=True).indices[..., :words]
    emissions = logits.float().gather(2, order[..., None].expand(-1, -1, -1, num_labels))
    tags = labels.gather(2, order).clamp(min=0)  # [batch, K, words]
    present = torch.arange(words, device=labels.device) < counts[..., None]
    start, step, end = (t.float() for t in scores)
    head = torch.arange(heads, device=labels.device)[None, :]
    # the gold chain's score: start, emissions and steps of its words, end at its last word
    last = tags.gather(-1, (counts - 1).clamp(min=0)[..., None]).squeeze(-1)
    gold = (
        start[head, tags[..., 0]]
        + (emissions.gather(-1, tags[..., None]).squeeze(-1) * present).sum(-1)
        + (step[head[..., None], tags[..., :-1], tags[..., 1:]] * present[..., 1:]).sum(-1)
        + end[head, last]
    )
    # every chain's: the forward algorithm; a row keeps its scores after its last word
    alpha = start + emissions[:, :, 0]  # [batch, K, labels]
    for w in range(1, words):
        extended = torch.logsumexp(alpha[..., :, None] + step, dim=-2) + emissions[:, :, w]
        alpha = torch.where(present[..., w, None], extended, alpha)
    log_partition = torch.logsumexp(alpha + end, -1)
    # rows without labels weigh 0 (still in the graph, so DDP sees the scores used)
    negative = (log_partition - gold) * (counts > 0)
    return negative.sum(0) / counts.sum(0).clamp(min=1)


def _head_label_costs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``cost[b, k, j]``: cross-entropy of head ``k``'s logits against label row ``j`` of
    example ``b``, summed over its labelled tokens (``logits [B, K, T, C]``, ``labels [B, K, T]``)."""
    log_probs = logits.float().log_softmax(-1)
    heads = logits.shape[1]
    # index[b, k, t, j] = labels[b, j, t], so gathering over classes scores every row with every head
    index = labels.clamp(min=0).transpose(1, 2).unsqueeze(1).expand(-1, heads, -1, -1)
    scores = log_probs.gather(-1, index)
    labelled = (labels != IGNORE_INDEX).transpose(1, 2).unsqueeze(1)
    # where, not a product: an ignored position's -inf log-probability must not turn into NaN
    return -torch.where(labelled, scores, 0.0).sum(2)


def _assignment(cost: np.ndarray, holds_relation: np.ndarray | None) -> np.ndarray:
    """Which label row each head gets: the cheapest assignment over all heads or, given which
    rows hold a relation, over the first R heads for those R rows (the rest in order)."""
    if holds_relation is None:
        # rows come back in order, so the second array is head k's label row
        return linear_sum_assignment(cost)[1]
    relations, others = np.flatnonzero(holds_relation), np.flatnonzero(~holds_relation)
    _, picked = linear_sum_assignment(cost[: len(relations)][:, relations])
    return np.concatenate([relations[picked], others])


def match_relations_to_heads(
    cause_effect_logits: torch.Tensor,
    signal_logits: torch.Tensor,
    cause_effect_labels: torch.Tensor,
    signal_labels: torch.Tensor,
    leading: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each example's K label rows (gold relations, then all-``O`` rows) so that the
    sum of its span heads' losses is the lowest possible; return the reordered labels.

    The data give a sentence's relations in position order (first tagged word), so under
    ``ordered`` head k learns "the k-th relation from the left"; here a head takes whichever
    relation it already fits best, as the scorer pairs a multi-relation sentence's predicted
    and gold relations by the best match. The assignment is exact (scipy's
    ``linear_sum_assignment`` on the detached costs); rows without labels cost 0 everywhere
    and keep their order. Non-finite logits leave the labels as they are, so the loss turns
    non-finite as it would unmatched, and the non-finite guard sees it.

    With ``leading`` (``loss.span_assignment=matched_leading``) a sentence with R relations
    keeps them on its first R heads, matched among those only: head order still means "the
    first relations", which the CNC scorers (they keep the first predicted relations when there
    are more than gold ones) and ``decode.force_relation`` (the first head's path) rely on.
    """
    if cause_effect_labels.shape[1] == 1:  # one head: nothing to match
        return cause_effect_labels, signal_labels
    with torch.no_grad():
        costs = _head_label_costs(cause_effect_logits, cause_effect_labels) + _head_label_costs(
            signal_logits, signal_labels
        )
        if not torch.isfinite(costs).all():
            return cause_effect_labels, signal_labels
    costs = costs.cpu().numpy()
    # only leading matching reads which rows hold a relation (label 0 is O): no extra host copy
    # on the free path
    holds_relation = (
        (cause_effect_labels > 0).any(-1).cpu().numpy() if leading else [None] * len(costs)
    )
    order = np.stack(
        [
            _assignment(cost, relations)
            for cost, relations in zip(costs, holds_relation, strict=True)
        ]
    )
    index = torch.as_tensor(order, device=cause_effect_labels.device)[:, :, None]
    return (
        cause_effect_labels.gather(1, index.expand_as(cause_effect_labels)),
        signal_labels.gather(1, index.expand_as(signal_labels)),
    )


# the order of the learned log variances (``log_variances[i]``)
TASKS = ("seq", "span", "pair")


def _labelled(labels: torch.Tensor) -> torch.Tensor:
    """1.0 when ``labels`` holds a label, else 0.0 (a tensor: no host sync on a GPU)."""
    return (labels != IGNORE_INDEX).any().to(torch.float32)


def unified_loss(
    seq_logits: torch.Tensor,
    pair_logits: torch.Tensor,
    cause_effect_logits: torch.Tensor,
    signal_logits: torch.Tensor,
    batch: dict,
    weights: LossWeights,
    log_variances: torch.Tensor | None = None,
    crf_scores: tuple[TagTransitions, TagTransitions] | None = None,
) -> LossBreakdown:
    """Combine the task losses of one batch (mixed tasks and corpora allowed).

    With ``crf_scores`` (the heads' cause/effect and signal CRF scores, ``model.span_crf``) a
    span head's term is their negative log-likelihood per word instead of the tags'
    cross-entropy.

    With ``log_variances`` (``s``, one per task of :data:`TASKS`; ``weights.learned``), task
    ``t`` adds ``w_t * exp(-s_t) * L_t + s_t / 2``, and only when the batch labels it: a task
    absent from a batch must not pull its ``s_t`` down (its loss is 0 there).
    """
    seq = masked_cross_entropy(seq_logits, batch["seq_labels"], weights.seq_label_smoothing)
    pair = masked_cross_entropy(pair_logits, batch["pair_labels"])
    cause_effect_labels, signal_labels = batch["cause_effect_labels"], batch["signal_labels"]
    if weights.span_assignment != "ordered":
        if crf_scores is not None:
            raise ValueError("model.span_crf needs loss.span_assignment=ordered")
        cause_effect_labels, signal_labels = match_relations_to_heads(
            cause_effect_logits,
            signal_logits,
            cause_effect_labels,
            signal_labels,
            leading=weights.span_assignment == "matched_leading",
        )
    if crf_scores is not None:
        per_head = list(
            (
                crf_negative_log_likelihood(cause_effect_logits, cause_effect_labels, crf_scores[0])
                + crf_negative_log_likelihood(signal_logits, signal_labels, crf_scores[1])
            ).unbind()
        )
    else:
        per_head = [
            masked_cross_entropy(cause_effect_logits[:, k], cause_effect_labels[:, k])
            + masked_cross_entropy(signal_logits[:, k], signal_labels[:, k])
            for k in range(cause_effect_logits.shape[1])
        ]
    span = torch.stack(per_head).sum()
    weighted = (weights.alpha, weights.span_weight, weights.pair_weight)
    task_weights = dict(zip(TASKS, weighted, strict=True))
    losses = dict(zip(TASKS, (seq, span, pair), strict=True))
    labelled = {
        "seq": _labelled(batch["seq_labels"]),
        "span": torch.maximum(
            _labelled(batch["cause_effect_labels"]), _labelled(batch["signal_labels"])
        ),
        "pair": _labelled(batch["pair_labels"]),
    }
    if log_variances is None:
        shares = {task: task_weights[task] * losses[task] for task in TASKS}
    else:
        # a task switched off (weight 0) stays in the graph at 0, as in the fixed sum, so that
        # DDP sees its head used; its log variance gets no gradient
        shares = {
            task: labelled[task] * (weight * torch.exp(-s) * losses[task] + s / 2)
            if weight > 0
            else 0.0 * losses[task]
            for (task, weight), s in zip(task_weights.items(), log_variances, strict=True)
        }
    total = sum(shares.values())
    return LossBreakdown(
        total=total,
        seq=seq,
        span=span,
        pair=pair,
        span_per_head=per_head,
        terms=shares,
        trains={task: labelled[task] * float(task_weights[task] > 0) for task in TASKS},
    )
