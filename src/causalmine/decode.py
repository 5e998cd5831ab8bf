"""Logits → word-level BIO → relations → tagged text in the corpus format.

1. each word gets a tag from its first subword, by one of two methods (``decode.method``):

   - ``argmax``: each word takes the most likely label of its first subword; spans then follow
     seqeval's lenient BIO reading (an ``I-`` after ``O`` starts a span);
   - ``viterbi``: per head and layer, the most likely *valid* BIO sequence under the first
     subwords' log-probabilities (an ``I-X`` only after ``B-X`` or ``I-X``), found exactly;

   words without a subword (cut by truncation, or empty) are filled in: inside a span when both
   neighbours say so, else ``O``;
2. a head yields a relation when it has every required kind of span (default: a cause and an
   effect), and relations whose cause/effect spans repeat an earlier head's are dropped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache

import torch

from causalmine.data.tags import CE_LABELS, SIG_LABELS, Relation, relation_from_bio

DEFAULT_REQUIRED_KINDS = ("C", "E")
DECODE_METHODS = ("argmax", "viterbi")
DEFAULT_METHOD = "argmax"


def check_method(method: str) -> str:
    if method not in DECODE_METHODS:
        raise ValueError(f"decode method must be one of {DECODE_METHODS}, got {method!r}")
    return method


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


def _viterbi(
    log_probs: torch.Tensor, labels: Sequence[str], lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """Best valid label ids ``[rows, words]`` for ``log_probs [rows, words, labels]``.

    With ``lengths`` (``[rows]``), row r is a path over its first ``lengths[r]`` words only: the
    words after them are padding, which neither scores nor constrains it (their ids are
    meaningless). So the rows of many sentences are decoded in one pass over the words.
    """
    rows, words, num_labels = log_probs.shape
    if words == 0:
        return torch.zeros((rows, 0), dtype=torch.long)
    start, step = (t.to(log_probs.device) for t in _bio_constraints(tuple(labels)))
    stay = torch.arange(num_labels, device=log_probs.device).expand(rows, -1)
    best = log_probs[:, 0] + start  # [rows, labels]: best score of a path ending in each label
    back = []
    for w in range(1, words):
        score, previous = (best[:, :, None] + step).max(1)  # over the label before
        score = score + log_probs[:, w]
        if lengths is not None:  # a finished row keeps its scores and points back to itself
            active = (lengths > w)[:, None]
            score = torch.where(active, score, best)
            previous = torch.where(active, previous, stay)
        best = score
        back.append(previous)
    last = best.argmax(-1)
    path = [last]
    for previous in reversed(back):
        last = previous.gather(1, last[:, None]).squeeze(1)
        path.append(last)
    return torch.stack(path[::-1], 1)


def bio_viterbi(log_probs: torch.Tensor, labels: Sequence[str]) -> list[str]:
    """The valid BIO sequence with the highest total log-probability (exact constrained Viterbi).

    ``log_probs`` is ``[words, labels]``; a per-word shift (logits instead of log-probabilities)
    does not change the answer.
    """
    ids = _viterbi(log_probs[None].float(), labels)[0]
    return [labels[i] for i in ids.tolist()]


def head_tags(
    outputs: torch.Tensor,
    word_positions: Sequence[int],
    labels: Sequence[str],
    method: str = DEFAULT_METHOD,
) -> list[list[str]]:
    """Word tags of each head from label ids ``[K, tokens]`` or scores ``[K, tokens, labels]``
    (logits or log-probabilities; ``viterbi`` needs scores)."""
    return sentence_head_tags([outputs], [word_positions], labels, method)[0]


def sentence_head_tags(
    outputs: Sequence[torch.Tensor],
    word_positions: Sequence[Sequence[int]],
    labels: Sequence[str],
    method: str = DEFAULT_METHOD,
) -> list[list[list[str]]]:
    """:func:`head_tags` of many sentences; ``viterbi`` decodes all their heads in one pass
    (per sentence, its Python loop over words cost more than the network's forward pass)."""
    if check_method(method) == "argmax":
        return [
            [word_tags(row, positions, labels) for row in (o.argmax(-1) if o.dim() == 3 else o)]
            for o, positions in zip(outputs, word_positions, strict=True)
        ]
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
    paths = iter(_viterbi(log_probs, labels, lengths).tolist())
    tags = []
    for k, positions in zip(heads, word_positions, strict=True):
        sentence = []
        for path in itertools.islice(paths, k):
            ids = iter(path)
            sentence.append(_fill_gaps([labels[next(ids)] if p >= 0 else None for p in positions]))
        tags.append(sentence)
    return tags


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
    method: str = DEFAULT_METHOD,
) -> list[list[Relation]]:
    """Relations of many sentences, each from per-head label ids ``[K, tokens]`` (argmax of the
    logits) or per-head scores ``[K, tokens, labels]`` (either method)."""
    return [
        relations_from_tags(ce_tags, sig_tags, required_kinds)
        for ce_tags, sig_tags in zip(
            sentence_head_tags(ce, word_positions, CE_LABELS, method),
            sentence_head_tags(sig, word_positions, SIG_LABELS, method),
            strict=True,
        )
    ]


def decode_relations(
    ce: torch.Tensor,
    sig: torch.Tensor,
    word_positions: Sequence[int],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
    method: str = DEFAULT_METHOD,
) -> list[Relation]:
    """Relations of one sentence (see :func:`decode_sentences`)."""
    return decode_sentences([ce], [sig], [word_positions], required_kinds, method)[0]


def head_outputs(
    ce_logits: torch.Tensor, sig_logits: torch.Tensor, method: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the decoder needs from span-head logits, on the CPU: label ids (``argmax``) or
    float scores (``viterbi``)."""
    if check_method(method) == "argmax":
        return ce_logits.argmax(-1).cpu(), sig_logits.argmax(-1).cpu()
    return ce_logits.detach().float().cpu(), sig_logits.detach().float().cpu()


def decode_batch(
    ce_logits: torch.Tensor,
    sig_logits: torch.Tensor,
    word_positions: list[list[int]],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
    method: str = DEFAULT_METHOD,
) -> list[list[Relation]]:
    """Relations for every sentence of a batch from logits ``[batch, K, tokens, labels]``."""
    ce, sig = head_outputs(ce_logits, sig_logits, method)
    return decode_sentences(list(ce), list(sig), word_positions, required_kinds, method)
