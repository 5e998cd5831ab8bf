"""Examples → model inputs: subword ids and word-level labels on each word's first subword.

Works with any fast tokenizer that accepts pre-split words (``is_split_into_words``): WordPiece
(BERT) and byte-level BPE (RoBERTa, which needs ``add_prefix_space=True``). A word that yields
no subword at all (an empty word from a double space) has no position; decoding fills it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from causalmine.schema import CE_LABEL_TO_ID, IGNORE_INDEX, SIG_LABEL_TO_ID, Example, Relation


@dataclass
class EncodedExample:
    """The tensors of one example plus what decoding and scoring need."""

    input_ids: list[int]
    attention_mask: list[int]
    seq_label: int  # IGNORE_INDEX when the example has no sequence label
    cause_effect_labels: (
        torch.Tensor
    )  # [heads, tokens], IGNORE_INDEX off first subwords / without spans
    signal_labels: torch.Tensor
    word_positions: list[
        int
    ]  # token index of each word's first subword, -1 if none (truncated or empty)
    example: Example
    token_type_ids: list[int] | None = None
    pair_label: int = IGNORE_INDEX

    def spans_cut_by_truncation(self, num_heads: int) -> int:
        """Gold spans (of the relations trained on) with a word beyond the subword window."""
        relations = (self.example.relations or [])[:num_heads]
        words = self.example.words
        return sum(
            1
            for relation in relations
            for span in relation.spans
            if any(self.word_positions[w] < 0 and words[w] for w in range(span.start, span.end))
        )

    @property
    def num_truncated_words(self) -> int:
        last = max((i for i, p in enumerate(self.word_positions) if p >= 0), default=-1)
        return len(self.word_positions) - 1 - last


def first_subword_positions(word_ids: list[int | None], num_words: int) -> list[int]:
    """Map each word to the token index of its first subword (-1 when it has none)."""
    positions = [-1] * num_words
    for token_index, word in enumerate(word_ids):
        if word is not None and positions[word] == -1:
            positions[word] = token_index
    return positions


def relation_label_rows(
    relations: list[Relation], num_words: int, num_heads: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Word-level label ids per head; heads beyond the relation count get all-``O``."""
    ce_rows, sig_rows = [], []
    for head in range(num_heads):
        if head < len(relations):
            ce = [CE_LABEL_TO_ID[t] for t in relations[head].ce_tags(num_words)]
            sig = [SIG_LABEL_TO_ID[t] for t in relations[head].sig_tags(num_words)]
        else:
            ce, sig = [0] * num_words, [0] * num_words
        ce_rows.append(ce)
        sig_rows.append(sig)
    return ce_rows, sig_rows


def encode_example(
    example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int, num_heads: int
) -> EncodedExample:
    """Tokenize one example and align its word-level labels to first subwords.

    A pair example is tokenized as running text (its markers are special tokens) and carries
    only its pair label.
    """
    if example.task == "pair":
        return _encode_pair(example, tokenizer, max_length, num_heads)
    encoding = tokenizer(
        example.words, is_split_into_words=True, truncation=True, max_length=max_length
    )
    num_tokens = len(encoding["input_ids"])
    positions = first_subword_positions(encoding.word_ids(), len(example.words))

    cause_effect_labels = torch.full((num_heads, num_tokens), IGNORE_INDEX, dtype=torch.long)
    signal_labels = torch.full((num_heads, num_tokens), IGNORE_INDEX, dtype=torch.long)
    if example.relations is not None:
        ce_rows, sig_rows = relation_label_rows(
            example.relations[:num_heads], len(example.words), num_heads
        )
        kept = [(w, p) for w, p in enumerate(positions) if p >= 0]
        if kept:
            words = torch.tensor([w for w, _ in kept])
            tokens = torch.tensor([p for _, p in kept])
            cause_effect_labels[:, tokens] = torch.tensor(ce_rows)[:, words]
            signal_labels[:, tokens] = torch.tensor(sig_rows)[:, words]

    return EncodedExample(
        input_ids=encoding["input_ids"],
        attention_mask=encoding["attention_mask"],
        token_type_ids=encoding.get("token_type_ids"),
        seq_label=example.seq_label if example.seq_label is not None else IGNORE_INDEX,
        cause_effect_labels=cause_effect_labels,
        signal_labels=signal_labels,
        word_positions=positions,
        example=example,
        pair_label=example.pair_label if example.pair_label is not None else IGNORE_INDEX,
    )


def _encode_pair(
    example: Example, tokenizer: PreTrainedTokenizerBase, max_length: int, num_heads: int
) -> EncodedExample:
    encoding = tokenizer(example.text, truncation=True, max_length=max_length)
    ignored = torch.full((num_heads, len(encoding["input_ids"])), IGNORE_INDEX, dtype=torch.long)
    return EncodedExample(
        input_ids=encoding["input_ids"],
        attention_mask=encoding["attention_mask"],
        token_type_ids=encoding.get("token_type_ids"),
        seq_label=IGNORE_INDEX,
        cause_effect_labels=ignored,
        signal_labels=ignored.clone(),
        word_positions=[],
        example=example,
        pair_label=example.pair_label if example.pair_label is not None else IGNORE_INDEX,
    )
