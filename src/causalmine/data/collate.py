"""Dynamic padding: each batch is padded to its own longest example, not to a fixed length."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from causalmine.data.encoding import EncodedExample
from causalmine.schema import IGNORE_INDEX, Example


class CausalCollator:
    """Pads token fields with the tokenizer's own collator and label matrices with -100.

    The batch also carries the source examples and each word's first-subword position, so
    validation can decode and score at word level against the full gold annotation (words cut
    off by truncation still count as missed).
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, pad_to_multiple_of: int | None = None
    ) -> None:
        self.token_collator = DataCollatorWithPadding(
            tokenizer, padding="longest", pad_to_multiple_of=pad_to_multiple_of, return_tensors="pt"
        )

    def __call__(self, items: list[EncodedExample]) -> dict[str, Any]:
        token_fields = []
        for item in items:
            fields = {"input_ids": item.input_ids, "attention_mask": item.attention_mask}
            if item.token_type_ids is not None:
                fields["token_type_ids"] = item.token_type_ids
            token_fields.append(fields)
        batch: dict[str, Any] = dict(self.token_collator(token_fields))
        length = batch["input_ids"].shape[1]
        batch["seq_labels"] = torch.tensor([item.seq_label for item in items], dtype=torch.long)
        batch["pair_labels"] = torch.tensor([item.pair_label for item in items], dtype=torch.long)
        batch["cause_effect_labels"] = _pad_stack(
            [item.cause_effect_labels for item in items], length
        )
        batch["signal_labels"] = _pad_stack([item.signal_labels for item in items], length)
        batch["meta"] = BatchMeta(
            [item.example for item in items], [item.word_positions for item in items]
        )
        return batch

    def pad_inputs(self, input_ids: list[list[int]]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` of unlabelled token sequences (prediction),
        padded as training batches are."""
        fields = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in input_ids]
        return dict(self.token_collator(fields))


class BatchMeta:
    """The non-tensor part of a batch. A plain class, so device transfer leaves it alone."""

    __slots__ = ("examples", "word_positions")

    def __init__(self, examples: list[Example], word_positions: list[list[int]]) -> None:
        self.examples = examples
        self.word_positions = (
            word_positions  # per example: token index of each word's first subword, -1 if none
        )

    def __len__(self) -> int:
        return len(self.examples)


def _pad_stack(matrices: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack ``[heads, tokens_i]`` label matrices into ``[batch, heads, length]``."""
    out = torch.full((len(matrices), matrices[0].shape[0], length), IGNORE_INDEX, dtype=torch.long)
    for i, m in enumerate(matrices):
        out[i, :, : m.shape[1]] = m
    return out
