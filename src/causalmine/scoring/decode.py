"""Logits → word-level BIO → relations → tagged text in the corpus format.

1. each word gets a tag from its first subword, by one of two methods (``decode.method``):

   - ``argmax``: each word takes the most likely label of its first subword; spans then follow
     seqeval's lenient BIO reading (an ``I-`` after ``O`` starts a span);
   - ``viterbi``: per head and layer, the most likely *valid* BIO sequence under the first
     subwords' log-probabilities (an ``I-X`` only after ``B-X`` or ``I-X``), found exactly;
     a model with CRFs (``model.span_crf``) adds each head's learned transition scores
     (:class:`~causalmine.schema.TagTransitions`) to the path's score;

   words without a subword (cut by truncation, or empty) are filled in: inside a span when both
   neighbours say so, else ``O``;
2. a head yields a relation when it has every required kind of span (default: a cause and an
   effect), and relations whose cause/effect spans repeat an earlier one's are dropped;
3. a sentence's relations come in head order, or most confident first
   (``decode.relation_order=confidence``; the CNC scorers keep a sentence's first relations
   when it gets more than its gold ones).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import torch

from causalmine.data.tags import relation_from_bio
from causalmine.schema import CE_LABELS, SIG_LABELS, Relation, TagTransitions
from causalmine.settings import (
    DECODE_METHODS,
    DEFAULT_DECODE_METHOD,
    DEFAULT_RELATION_ORDER,
    DEFAULT_REQUIRED_KINDS,
    RELATION_ORDERS,
)


def check_method(method: str) -> str:
    """``method`` itself (the decoders dispatch on it: an unknown one must not fall through)."""
    if method not in DECODE_METHODS:
        raise ValueError(f"decode method must be one of {DECODE_METHODS}, got {method!r}")
    return method


def check_relation_order(relation_order: str, method: str) -> str:
    """``relation_order`` itself, known and decodable by ``method``."""
    if relation_order not in RELATION_ORDERS:
        raise ValueError(
            f"decode relation order must be one of {RELATION_ORDERS}, got {relation_order!r}"
        )
    if relation_order == "confidence" and check_method(method) != "viterbi":
        raise ValueError("decode.relation_order=confidence needs decode.method=viterbi")
    return relation_order


def _fill_gaps(tags: list[str | None]) -> list[str]:
    """Tags for words without a subword (``None``): inside a span when both neighbours say so."""
    for i, tag in enumerate(tags):
        if tag is None:
            before = tags[i - 1] if i > 0 else None
            after = next((t for t in tags[i + 1 :] if t is not None), None)
            inside = (
                before not in (None, "O")
                and after is not None
                and after.startswith("I-")
                and after[2:] == before[2:]
            )
            tags[i] = f"I-{before[2:]}" if inside else "O"  # type: ignore[index]
    return tags  # type: ignore[return-value]


def word_tags(
    token_label_ids: Sequence[int], word_positions: Sequence[int], labels: Sequence[str]
) -> list[str]:
    """Word-level tags from token-level label ids (first subword of each word)."""
    return _fill_gaps([labels[token_label_ids[p]] if p >= 0 else None for p in word_positions])


@cache
def _bio_constraints(labels: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive scores of valid BIO: ``start[j]`` and ``step[i, j]`` (label i then j) are 0 where
    allowed and -inf where not (``I-X`` at the start, or after anything but ``B-X``/``I-X``)."""

    def allowed(before: str | None, label: str) -> bool:
        if not label.startswith("I-"):
            return True
        kind = label[2:]
        return before in (f"B-{kind}", f"I-{kind}")

    def score(ok: bool) -> float:
        return 0.0 if ok else float("-inf")

    start = torch.tensor([score(allowed(None, j)) for j in labels])
    step = torch.tensor([[score(allowed(i, j)) for j in labels] for i in labels])
    return start, step


@cache
def _bio_constraints_requiring(
    labels: tuple[str, ...], kinds: tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Valid BIO that holds at least one span of every kind in ``kinds``, as a Viterbi over
    states (label, kinds seen so far): ``start``, ``step`` and ``end`` scores (0 or -inf) and
    each state's label id. A span of kind X opens with ``B-X`` (valid BIO has no other way), so
    a state's kinds grow when it is a ``B-`` label; only states that have seen every kind end."""
    start, step = _bio_constraints(labels)
    opens = [
        1 << kinds.index(t[2:]) if t.startswith("B-") and t[2:] in kinds else 0 for t in labels
    ]
    states = [(j, seen) for seen in range(1 << len(kinds)) for j in range(len(labels))]
    blocked = float("-inf")
    start_of = [start[j] if seen == opens[j] else blocked for j, seen in states]
    step_of = [
        [step[i, j] if seen_j == seen_i | opens[j] else blocked for j, seen_j in states]
        for i, seen_i in states
    ]
    full = (1 << len(kinds)) - 1
    end_of = [0.0 if seen == full else blocked for _, seen in states]
    label_of = torch.tensor([j for j, _ in states])
    return torch.tensor(start_of), torch.tensor(step_of), torch.tensor(end_of), label_of


def _best_paths(
    scores: torch.Tensor,
    start: torch.Tensor,
    step: torch.Tensor,
    lengths: torch.Tensor | None = None,
    end: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi: the best state ids ``[rows, words]`` for ``scores [rows, words, states]`` under
    additive ``start``/``step``/``end`` scores, and each path's total score.

    With ``lengths`` (``[rows]``), row r is a path over its first ``lengths[r]`` words only: the
    words after them are padding, which neither scores nor constrains it (their ids are
    meaningless). So the rows of many sentences are decoded in one pass over the words.
    """
    rows, words, num_states = scores.shape
    if words == 0:
        return torch.zeros((rows, 0), dtype=torch.long), torch.zeros(rows)
    start, step = start.to(scores.device), step.to(scores.device)
    stay = torch.arange(num_states, device=scores.device).expand(rows, -1)
    best = scores[:, 0] + start  # [rows, states]: best score of a path ending in each state
    back = []
    for w in range(1, words):
        score, previous = (best[:, :, None] + step).max(1)  # over the state before
        score = score + scores[:, w]
        if lengths is not None:  # a finished row keeps its scores and points back to itself
            active = (lengths > w)[:, None]
            score = torch.where(active, score, best)
            previous = torch.where(active, previous, stay)
        best = score
        back.append(previous)
    if end is not None:
        best = best + end.to(scores.device)
    total, last = best.max(-1)
    path = [last]
    for previous in reversed(back):
        last = previous.gather(1, last[:, None]).squeeze(1)
        path.append(last)
    return torch.stack(path[::-1], 1), total


def _viterbi(
    log_probs: torch.Tensor,
    labels: Sequence[str],
    lengths: torch.Tensor | None = None,
    learned: TagTransitions | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best valid label ids ``[rows, words]`` for ``log_probs [rows, words, labels]`` (rows of
    different ``lengths``: see :func:`_best_paths`), under each row's ``learned`` transition
    scores (``start [rows, labels]``, ...) when given, and each path's total score."""
    start, step = _bio_constraints(tuple(labels))
    end = None
    if learned is not None:
        start, step, end = start + learned.start, step + learned.step, learned.end
    return _best_paths(log_probs, start, step, lengths, end)


def _outside_scores(
    log_probs: torch.Tensor,
    labels: Sequence[str],
    lengths: torch.Tensor,
    learned: TagTransitions | None = None,
) -> torch.Tensor:
    """Each row's score of the all-``O`` path (no span), scored as :func:`_viterbi` scores a path."""
    outside = labels.index("O")
    words = torch.arange(log_probs.shape[1])
    score = (log_probs[..., outside] * (words[None] < lengths[:, None])).sum(1)
    if learned is not None:
        steps = (lengths - 1).clamp(min=0) * learned.step[:, outside, outside]
        ends = learned.start[:, outside] + steps + learned.end[:, outside]
        score = score + torch.where(lengths > 0, ends, torch.zeros_like(ends))
    return score


def _viterbi_requiring(
    log_probs: torch.Tensor,
    labels: Sequence[str],
    kinds: Sequence[str],
    lengths: torch.Tensor | None = None,
    learned: TagTransitions | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`_viterbi`, among the paths with at least one span of every kind in
    ``kinds``; also says which rows have such a path at all (a one-word row cannot hold two)."""
    start, step, end, label_of = _bio_constraints_requiring(tuple(labels), tuple(kinds))
    if learned is not None:  # a state scores as its label
        start = start + learned.start[:, label_of]
        step = step + learned.step[:, label_of][:, :, label_of]
        end = end + learned.end[:, label_of]
    states, total = _best_paths(log_probs[..., label_of], start, step, lengths, end)
    feasible = total > float("-inf")
    if lengths is not None:  # a sentence without scored words holds no span
        feasible &= lengths > 0
    return label_of[states], feasible


def bio_viterbi(log_probs: torch.Tensor, labels: Sequence[str]) -> list[str]:
    """The valid BIO sequence with the highest total log-probability (exact constrained Viterbi).

    ``log_probs`` is ``[words, labels]``; a per-word shift (logits instead of log-probabilities)
    does not change the answer.
    """
    ids = _viterbi(log_probs[None].float(), labels)[0][0]
    return [labels[i] for i in ids.tolist()]


def head_tags(
    outputs: torch.Tensor,
    word_positions: Sequence[int],
    labels: Sequence[str],
    method: str = DEFAULT_DECODE_METHOD,
    transitions: TagTransitions | None = None,
) -> list[list[str]]:
    """Word tags of each head from label ids ``[K, tokens]`` or scores ``[K, tokens, labels]``
    (logits or log-probabilities; ``viterbi`` needs scores), under the heads' learned
    ``transitions`` when the model has CRFs."""
    return sentence_head_tags([outputs], [word_positions], labels, method, transitions)[0]


def _rows_of(transitions: TagTransitions, heads: Sequence[int]) -> TagTransitions:
    """The transitions of every decoded row: sentence after sentence, its first k heads'."""
    return TagTransitions(*(torch.cat([t[:0], *(t[:k] for k in heads)]) for t in transitions))


def sentence_head_tags(
    outputs: Sequence[torch.Tensor],
    word_positions: Sequence[Sequence[int]],
    labels: Sequence[str],
    method: str = DEFAULT_DECODE_METHOD,
    transitions: TagTransitions | None = None,
) -> list[list[list[str]]]:
    """:func:`head_tags` of many sentences; ``viterbi`` decodes all their heads in one pass
    (per sentence, its Python loop over words cost more than the network's forward pass)."""
    if check_method(method) == "argmax":
        if transitions is not None:
            raise ValueError(
                "a model with CRFs (model.span_crf) decodes with decode.method=viterbi; "
                "argmax would ignore its learned transitions"
            )
        return [
            [word_tags(row, positions, labels) for row in (o.argmax(-1) if o.dim() == 3 else o)]
            for o, positions in zip(outputs, word_positions, strict=True)
        ]
    return _viterbi_head_tags(outputs, word_positions, labels, transitions)[0]


def _viterbi_head_tags(
    outputs: Sequence[torch.Tensor],
    word_positions: Sequence[Sequence[int]],
    labels: Sequence[str],
    transitions: TagTransitions | None = None,
    with_confidences: bool = False,
) -> tuple[list[list[list[str]]], list[list[float]] | None]:
    """Viterbi's tags of every head of many sentences and, ``with_confidences``, each head's
    confidence in its path: the path's score minus the all-``O`` path's (a log-likelihood
    ratio, ``>= 0``); only ``decode.relation_order=confidence`` pays for them."""
    log_probs, lengths, heads = _padded_log_probs(outputs, word_positions, labels)
    learned = _rows_of(transitions, heads) if transitions is not None else None
    paths, totals = _viterbi(log_probs, labels, lengths, learned)
    rows = iter(paths.tolist())
    tags = [
        [_path_tags(path, positions, labels) for path in itertools.islice(rows, k)]
        for k, positions in zip(heads, word_positions, strict=True)
    ]
    if not with_confidences:
        return tags, None
    # a row without scored words has one path, the empty one (its padded total means nothing)
    leads = totals - _outside_scores(log_probs, labels, lengths, learned)
    margins = iter(torch.where(lengths > 0, leads, torch.zeros_like(leads)).tolist())
    return tags, [list(itertools.islice(margins, k)) for k in heads]


def _padded_log_probs(
    outputs: Sequence[torch.Tensor], word_positions: Sequence[Sequence[int]], labels: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The scored words' log-probabilities of every head of every sentence, one row per head,
    padded to the longest sentence: ``[rows, words, labels]``, each row's length, and the
    number of heads (rows) of each sentence."""
    if any(o.dim() != 3 for o in outputs):
        raise ValueError("viterbi decoding needs scores [K, tokens, labels], not label ids")
    scored = [[p for p in positions if p >= 0] for positions in word_positions]
    heads = [o.shape[0] for o in outputs]
    log_probs = torch.zeros(sum(heads), max(map(len, scored), default=0), len(labels))
    lengths = torch.zeros(sum(heads), dtype=torch.long)
    row = 0
    for o, kept in zip(outputs, scored, strict=True):
        log_probs[row : row + o.shape[0], : len(kept)] = o[:, kept].float().log_softmax(-1)
        lengths[row : row + o.shape[0]] = len(kept)
        row += o.shape[0]
    return log_probs, lengths, heads


def _path_tags(path: Sequence[int], positions: Sequence[int], labels: Sequence[str]) -> list[str]:
    """Word tags from a path over the scored words (words without a subword filled in)."""
    ids = iter(path)
    return _fill_gaps([labels[next(ids)] if p >= 0 else None for p in positions])


def forced_ce_tags(
    outputs: Sequence[torch.Tensor],
    word_positions: Sequence[Sequence[int]],
    kinds: Sequence[str],
    transitions: TagTransitions | None = None,
) -> list[list[str] | None]:
    """Each sentence's best cause/effect tags from its first head's scores ``[K, tokens, labels]``
    (and its learned ``transitions``, with CRFs) among the paths holding a span of every kind
    in ``kinds`` (``None``: no such path fits)."""
    log_probs, lengths, heads = _padded_log_probs(
        [o[:1] for o in outputs], word_positions, CE_LABELS
    )
    learned = _rows_of(transitions, heads) if transitions is not None else None
    paths, feasible = _viterbi_requiring(log_probs, CE_LABELS, kinds, lengths, learned)
    return [
        _path_tags(path, positions, CE_LABELS) if ok else None
        for path, ok, positions in zip(
            paths.tolist(), feasible.tolist(), word_positions, strict=True
        )
    ]


def relations_from_tags(
    ce_tags: Sequence[Sequence[str]],
    sig_tags: Sequence[Sequence[str]],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
) -> list[Relation]:
    """One sentence's relations from each head's cause/effect and signal tags."""
    relations: list[Relation] = []
    seen: set[tuple] = set()
    for ce_row, sig_row in zip(ce_tags, sig_tags, strict=True):
        relation = relation_from_bio(list(ce_row), list(sig_row))
        kinds = {s.kind for s in relation.spans}
        if not all(k in kinds for k in required_kinds) or not relation.spans:
            continue
        key = tuple(s for s in relation.spans if s.kind in "CE")
        if key in seen:
            continue
        seen.add(key)
        relations.append(relation)
    return relations


def decode_sentences(
    ce: Sequence[torch.Tensor],
    sig: Sequence[torch.Tensor],
    word_positions: Sequence[Sequence[int]],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
    method: str = DEFAULT_DECODE_METHOD,
    causal: Sequence[bool] | None = None,
    transitions: tuple[TagTransitions, TagTransitions] | None = None,
    relation_order: str = DEFAULT_RELATION_ORDER,
) -> list[list[Relation]]:
    """Relations of many sentences, each from per-head label ids ``[K, tokens]`` (argmax of the
    logits) or per-head scores ``[K, tokens, labels]`` (either method).

    ``relation_order`` (``decode.relation_order``): a sentence's relations come in head order
    (``head``), or, with ``confidence`` (``viterbi`` only), most confident first: by how much
    more likely the cause/effect head's path is than tagging nothing. The order matters where a
    sentence gets more relations than its gold ones: the CNC scorers keep the first ones.

    ``causal`` (``decode.force_relation``; needs scores): a sentence marked causal that no head
    gives a relation gets the first head's best path holding every required cause/effect kind
    (exact, by :func:`forced_ce_tags`) with that head's signal tags.

    ``transitions``: the cause/effect and signal CRFs' learned transition scores of a model
    with ``model.span_crf`` (``viterbi`` only), added to every path's score.
    """
    ce_transitions, sig_transitions = transitions if transitions is not None else (None, None)
    if check_relation_order(relation_order, method) == "confidence":
        ce_tags, confidences = _viterbi_head_tags(
            ce, word_positions, CE_LABELS, ce_transitions, with_confidences=True
        )
        # heads most confident first (a stable sort: ties keep head order)
        orders = [sorted(range(len(c)), key=lambda k, c=c: -c[k]) for c in confidences or []]
    else:
        ce_tags = sentence_head_tags(ce, word_positions, CE_LABELS, method, ce_transitions)
        orders = [list(range(len(c))) for c in ce_tags]
    sig_tags = sentence_head_tags(sig, word_positions, SIG_LABELS, method, sig_transitions)
    relations = [
        relations_from_tags([c[k] for k in order], [s[k] for k in order], required_kinds)
        for c, s, order in zip(ce_tags, sig_tags, orders, strict=True)
    ]
    kinds = [k for k in ("C", "E") if k in required_kinds]
    if causal is None or not kinds:
        return relations
    missing = [i for i, found in enumerate(relations) if causal[i] and not found]
    if missing:
        forced = forced_ce_tags(
            [ce[i] for i in missing], [word_positions[i] for i in missing], kinds, ce_transitions
        )
        for i, tags in zip(missing, forced, strict=True):
            if tags is not None and sig_tags[i]:
                relations[i] = relations_from_tags([tags], sig_tags[i][:1], required_kinds)
    return relations


def decode_relations(
    ce: torch.Tensor,
    sig: torch.Tensor,
    word_positions: Sequence[int],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
    method: str = DEFAULT_DECODE_METHOD,
    transitions: tuple[TagTransitions, TagTransitions] | None = None,
) -> list[Relation]:
    """Relations of one sentence (see :func:`decode_sentences`)."""
    return decode_sentences(
        [ce], [sig], [word_positions], required_kinds, method, None, transitions
    )[0]


def head_outputs(
    cause_effect_logits: torch.Tensor, signal_logits: torch.Tensor, method: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the decoder needs from span-head logits, on the CPU: label ids (``argmax``) or
    float scores (``viterbi``)."""
    if check_method(method) == "argmax":
        return cause_effect_logits.argmax(-1).cpu(), signal_logits.argmax(-1).cpu()
    return cause_effect_logits.detach().float().cpu(), signal_logits.detach().float().cpu()


def decode_batch(
    cause_effect_logits: torch.Tensor,
    signal_logits: torch.Tensor,
    word_positions: list[list[int]],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
    method: str = DEFAULT_DECODE_METHOD,
    causal: Sequence[bool] | None = None,
    transitions: tuple[TagTransitions, TagTransitions] | None = None,
    relation_order: str = DEFAULT_RELATION_ORDER,
) -> list[list[Relation]]:
    """Relations for every sentence of a batch from logits ``[batch, K, tokens, labels]`` (and,
    with CRFs, their learned ``transitions``: see :func:`decode_sentences`)."""
    ce, sig = head_outputs(cause_effect_logits, signal_logits, method)
    return decode_sentences(
        list(ce),
        list(sig),
        word_positions,
        required_kinds,
        method,
        causal,
        transitions,
        relation_order,
    )
