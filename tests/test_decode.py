"""Decoding: first-subword tags → well-formed spans → relations → tagged text."""

from __future__ import annotations

import torch

from causalmine.data.tags import CE_LABEL_TO_ID as CE
from causalmine.data.tags import SIG_LABEL_TO_ID as SIG
from causalmine.data.tags import Span, parse_tagged, render_tagged, strip_tags
from causalmine.decode import decode_relations, word_tags

LABELS = ("O", "B-C", "I-C", "B-E", "I-E")


def test_word_tags_read_first_subwords_and_fill_gaps():
    token_ids = [0, CE["B-C"], CE["I-C"], CE["I-C"], 0, CE["B-E"]]
    # word 1 has no subword (empty word) between two cause words; word 4 is cut off
    assert word_tags(token_ids, [1, -1, 3, 5, -1], LABELS) == ["B-C", "I-C", "I-C", "B-E", "O"]
    assert word_tags(token_ids, [1, -1, 5], LABELS) == ["B-C", "O", "B-E"]


def _ids(rows, labels):
    return torch.tensor([[labels[t] for t in row] for row in rows])


def test_decode_requires_cause_and_effect_and_drops_duplicates():
    positions = list(range(5))
    ce = _ids(
        [
            ["B-C", "I-C", "O", "B-E", "I-E"],
            ["B-C", "I-C", "O", "B-E", "I-E"],  # duplicate of head 1
            ["B-C", "O", "O", "O", "O"],  # no effect: not a relation
        ],
        CE,
    )
    sig = _ids([["O", "O", "B-S", "O", "O"], ["O"] * 5, ["O"] * 5], SIG)
    relations = decode_relations(ce, sig, positions)
    assert len(relations) == 1
    assert relations[0].signals == (Span(2, 3, "S"),)
    assert len(decode_relations(ce, sig, positions, required_kinds=("C",))) == 2


def test_i_after_o_starts_a_span():
    ce = _ids([["O", "I-C", "I-C", "O", "I-E"]], CE)
    (relation,) = decode_relations(ce, _ids([["O"] * 5], SIG), list(range(5)))
    assert relation.causes == (Span(1, 3, "C"),) and relation.effects == (Span(4, 5, "E"),)


def test_rendered_prediction_keeps_the_words():
    words = ["Prices", "rose", "because", "supply", "fell", "sharply", "."]
    ce = _ids([["B-E", "I-E", "O", "B-C", "I-C", "I-C", "O"]], CE)
    sig = _ids([["O", "O", "B-S", "O", "O", "O", "O"]], SIG)
    (relation,) = decode_relations(ce, sig, list(range(7)))
    tagged = render_tagged(words, relation)
    assert (
        tagged == "<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell sharply</ARG0> ."
    )
    assert strip_tags(tagged) == " ".join(words)
    assert parse_tagged(tagged).relation == relation
