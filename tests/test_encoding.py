"""Subword alignment: word labels on the first subword, -100 elsewhere, for both tokenizer kinds."""

from __future__ import annotations

import torch

from causalmine.data.collate import CausalCollator
from causalmine.data.encoding import encode_example, first_subword_positions
from causalmine.data.tags import parse_tagged
from causalmine.schema import CE_LABEL_TO_ID, IGNORE_INDEX, SIG_LABEL_TO_ID, Example


def _example(tagged: str, seq_label: int | None = 1) -> Example:
    parsed = parse_tagged(tagged)
    return Example(
        id="d_1",
        text=" ".join(parsed.words),
        doc_id="d",
        seq_label=seq_label,
        relations=[parsed.relation],
    )


def test_first_subword_positions():
    assert first_subword_positions([None, 0, 0, 1, 2, 2, 2, None], 4) == [1, 3, 4, -1]


def test_labels_sit_on_first_subwords_only(tokenizer):
    example = _example(
        "<ARG1>Unemployment skyrocketed</ARG1> <SIG0>because</SIG0> <ARG0>factories closed</ARG0> ."
    )
    encoded = encode_example(example, tokenizer, max_length=64, num_heads=2)
    word_ids = tokenizer(example.words, is_split_into_words=True)["input_ids"]
    assert encoded.input_ids == word_ids
    ce_words = ["B-E", "I-E", "O", "B-C", "I-C", "O"]
    sig_words = ["O", "O", "B-S", "O", "O", "O"]
    positions = encoded.word_positions
    assert all(p >= 0 for p in positions)
    for w, p in enumerate(positions):
        assert encoded.cause_effect_labels[0, p] == CE_LABEL_TO_ID[ce_words[w]]
        assert encoded.signal_labels[0, p] == SIG_LABEL_TO_ID[sig_words[w]]
        assert encoded.cause_effect_labels[1, p] == 0  # missing second relation: all-O target
    others = [t for t in range(len(encoded.input_ids)) if t not in positions]
    assert others, "some word must split into several subwords for this test to mean anything"
    assert (encoded.cause_effect_labels[:, others] == IGNORE_INDEX).all()
    assert (encoded.signal_labels[:, others] == IGNORE_INDEX).all()


def test_roberta_tokenizer_adds_prefix_space(roberta_tokenizer):
    pieces = roberta_tokenizer(["strike", "resumed"], is_split_into_words=True)
    tokens = roberta_tokenizer.convert_ids_to_tokens(pieces["input_ids"])
    assert tokens[1].startswith("Ġ")


def test_truncation_keeps_gold_and_marks_cut_words(tokenizer):
    words = " ".join(f"w{i}" for i in range(60))
    example = _example(f"<ARG0>{words}</ARG0> so <ARG1>done</ARG1>")
    encoded = encode_example(example, tokenizer, max_length=16, num_heads=1)
    assert len(encoded.input_ids) == 16
    assert encoded.num_truncated_words > 0
    assert encoded.word_positions[-1] == -1
    assert example.relations[0].effects  # the gold relation itself is untouched


def test_example_without_labels_is_all_ignored(tokenizer):
    example = Example(id="x", text="no labels here", doc_id="x")
    encoded = encode_example(example, tokenizer, max_length=32, num_heads=3)
    assert encoded.seq_label == IGNORE_INDEX
    assert (encoded.cause_effect_labels == IGNORE_INDEX).all() and (
        encoded.signal_labels == IGNORE_INDEX
    ).all()


def test_empty_word_from_double_space_has_no_position(bert_tokenizer):
    example = Example(id="x", text="a  b", doc_id="x", relations=[])
    encoded = encode_example(example, bert_tokenizer, max_length=32, num_heads=1)
    assert example.words == ["a", "", "b"]
    assert encoded.word_positions[1] == -1


def test_collator_pads_to_the_longest_in_batch(tokenizer):
    short = encode_example(_example("<ARG0>a</ARG0> <ARG1>b</ARG1>"), tokenizer, 64, 2)
    long = encode_example(
        _example("<ARG0>rain fell all night</ARG0> and <ARG1>rivers rose fast</ARG1>", seq_label=0),
        tokenizer,
        64,
        2,
    )
    batch = CausalCollator(tokenizer)([short, long])
    length = len(long.input_ids)
    assert batch["input_ids"].shape == (2, length)
    assert batch["cause_effect_labels"].shape == (2, 2, length)
    assert batch["attention_mask"][0].sum() == len(short.input_ids)
    assert (batch["cause_effect_labels"][0, :, len(short.input_ids) :] == IGNORE_INDEX).all()
    assert batch["seq_labels"].tolist() == [1, 0]
    assert batch["pair_labels"].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert batch["meta"].word_positions[1] == long.word_positions
    assert torch.equal(batch["input_ids"][1], torch.tensor(long.input_ids))
