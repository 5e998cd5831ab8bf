"""Logits → word-level BIO → relations → tagged text in the corpus format.

1. each word takes the label of its first subword (words without a subword, cut by truncation
   or empty, are filled in: inside a span when both neighbours say so, else ``O``);
2. spans follow seqeval's lenient BIO reading (an ``I-`` after ``O`` starts a span);
3. a head yields a relation when it has every required kind of span (default: a cause and an
   effect), and relations whose cause/effect spans repeat an earlier head's are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from causalmine.data.tags import CE_LABELS, SIG_LABELS, Relation, relation_from_bio

DEFAULT_REQUIRED_KINDS = ("C", "E")


def word_tags(
    token_label_ids: Sequence[int], word_positions: Sequence[int], labels: Sequence[str]
) -> list[str]:
    """Word-level tags from token-level label ids (first subword of each word)."""
    tags: list[str | None] = [
        labels[token_label_ids[p]] if p >= 0 else None for p in word_positions
    ]
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


def decode_relations(
    ce_ids: torch.Tensor,
    sig_ids: torch.Tensor,
    word_positions: Sequence[int],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
) -> list[Relation]:
    """Relations of one sentence from per-head label ids ``[K, tokens]`` (argmax of the logits)."""
    ce_rows, sig_rows = ce_ids.tolist(), sig_ids.tolist()
    relations: list[Relation] = []
    seen: set[tuple] = set()
    for ce_row, sig_row in zip(ce_rows, sig_rows, strict=True):
        relation = relation_from_bio(
            word_tags(ce_row, word_positions, CE_LABELS),
            word_tags(sig_row, word_positions, SIG_LABELS),
        )
        kinds = {s.kind for s in relation.spans}
        if not all(k in kinds for k in required_kinds) or not relation.spans:
            continue
        key = tuple(s for s in relation.spans if s.kind in "CE")
        if key in seen:
            continue
        seen.add(key)
        relations.append(relation)
    return relations


def decode_batch(
    ce_logits: torch.Tensor,
    sig_logits: torch.Tensor,
    word_positions: list[list[int]],
    required_kinds: Sequence[str] = DEFAULT_REQUIRED_KINDS,
) -> list[list[Relation]]:
    """Relations for every sentence of a batch from logits ``[batch, K, tokens, labels]``."""
    ce_ids = ce_logits.argmax(-1).cpu()
    sig_ids = sig_logits.argmax(-1).cpu()
    return [
        decode_relations(ce_ids[i], sig_ids[i], positions, required_kinds)
        for i, positions in enumerate(word_positions)
    ]
