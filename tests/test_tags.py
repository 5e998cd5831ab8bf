"""Tagged text ↔ words, relations and BIO: hand-made cases, every real relation, round trips."""

from __future__ import annotations

import ast
import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from causalmine.data.tags import (
    TagError,
    bio_to_spans,
    parse_tagged,
    relation_from_bio,
    render_tagged,
    strip_tags,
)
from causalmine.schema import Relation, Span, spans_to_bio


def test_parse_simple_relation():
    parsed = parse_tagged(
        "<ARG1>The strike resumed</ARG1> when <ARG0>demands were not met</ARG0> ."
    )
    assert parsed.words == [
        "The",
        "strike",
        "resumed",
        "when",
        "demands",
        "were",
        "not",
        "met",
        ".",
    ]
    assert parsed.relation.effects == (Span(0, 3, "E"),)
    assert parsed.relation.causes == (Span(4, 8, "C"),)
    assert parsed.relation.ce_tags(len(parsed.words)) == [
        "B-E",
        "I-E",
        "I-E",
        "O",
        "B-C",
        "I-C",
        "I-C",
        "I-C",
        "O",
    ]
    assert not parsed.tags_inside_words


def test_one_word_spans_are_closed():
    parsed = parse_tagged("<ARG0>rain</ARG0> <SIG0>caused</SIG0> <ARG1>floods</ARG1> today")
    assert parsed.relation.ce_tags(4) == ["B-C", "O", "B-E", "O"]
    assert parsed.relation.sig_tags(4) == ["O", "B-S", "O", "O"]


def test_signal_inside_a_cause_uses_the_second_layer():
    text = "<ARG1>Talks are underway</ARG1> <ARG0><SIG0>to</SIG0> end the strike</ARG0>"
    parsed = parse_tagged(text)
    assert parsed.relation.ce_tags(7) == ["B-E", "I-E", "I-E", "B-C", "I-C", "I-C", "I-C"]
    assert parsed.relation.sig_tags(7) == ["O", "O", "O", "B-S", "O", "O", "O"]
    assert render_tagged(parsed.words, parsed.relation) == text


def test_tag_inside_a_word_widens_the_span_and_is_flagged():
    parsed = parse_tagged("<ARG1>it is not China</ARG1>. ”")
    assert parsed.words == ["it", "is", "not", "China.", "”"]
    assert parsed.relation.effects == (Span(0, 4, "E"),)
    assert parsed.tags_inside_words


def test_word_shared_by_cause_and_effect_goes_to_the_larger_share():
    # CNC train row 2970: the cause ends and the effect begins inside "Bijapur—killing"
    # (8 of its 15 characters are the cause's, 7 the effect's; the signal layer is separate)
    parsed = parse_tagged("<ARG0>in Bijapur—</ARG0><ARG1><SIG0>killing</SIG0> a rebel</ARG1> .")
    assert parsed.relation.causes == (Span(0, 2, "C"),)
    assert parsed.relation.effects == (Span(2, 4, "E"),)
    assert parsed.relation.signals == (Span(1, 2, "S"),)
    parsed = parse_tagged("<ARG0>in Bij</ARG0><ARG1><SIG0>killing</SIG0> a rebel</ARG1> .")
    assert parsed.relation.causes == (Span(0, 1, "C"),)
    assert parsed.relation.effects == (Span(1, 4, "E"),)


@pytest.mark.parametrize(
    ("tagged", "reason"),
    [
        ("<ARG0>a b c", "unclosed tag"),
        ("a b</ARG0> c", "unopened tag"),
        ("<ARG0>a <ARG0>b</ARG0> c</ARG0>", "nested tag"),
        ("<ARG2>a</ARG2> b", "unknown tag"),
        ("<ARG0 >a</ARG0> b", "unknown tag"),
        ("<ARG0></ARG0>a b", "empty span"),
        ("<ARG0>a <ARG1>b</ARG1> c</ARG0>", "overlapping spans"),
    ],
)
def test_bad_tags_are_named(tagged, reason):
    with pytest.raises(TagError) as err:
        parse_tagged(tagged)
    assert err.value.reason == reason


def test_untagged_words_must_match_the_text():
    with pytest.raises(TagError) as err:
        parse_tagged("<ARG0>a</ARG0> b", text="a c")
    assert err.value.reason == "words differ from text"


def _relations_of(path):
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            cell = row["causal_text_w_pairs"]
            for tagged in ast.literal_eval(cell) if cell.strip() else []:
                yield row["text"], tagged


@pytest.mark.parametrize("split", ["train", "dev"])
def test_every_cnc_relation_parses_and_round_trips(data_root, split):
    total = inside = 0
    for text, tagged in _relations_of(data_root / "cnc_v2" / f"{split}_subtask2_grouped.csv"):
        parsed = parse_tagged(tagged, text)
        assert parsed.words == text.split(" ")
        rendered = render_tagged(parsed.words, parsed.relation)
        again = parse_tagged(rendered, text)
        assert again.relation == parsed.relation and again.words == parsed.words
        assert strip_tags(rendered) == text
        if parsed.tags_inside_words:
            inside += 1
        else:
            assert rendered == tagged
        total += 1
    # CNC V2 as published: 2257 train / 249 dev relations, 12 / 1 with a tag inside a word
    assert (total, inside) == {"train": (2257, 12), "dev": (249, 1)}[split]


@st.composite
def words_and_relation(draw):
    n = draw(st.integers(min_value=2, max_value=14))
    words = draw(
        st.lists(st.text(alphabet="abcXYZ,.'’é", min_size=1, max_size=6), min_size=n, max_size=n)
    )
    # cut the words into consecutive blocks and label some as cause / effect
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(4, n - 1))))
    blocks = list(zip([0, *cuts], [*cuts, n], strict=True))
    kinds = draw(
        st.lists(st.sampled_from(["C", "E", None]), min_size=len(blocks), max_size=len(blocks))
    )
    spans = [Span(a, b, k) for (a, b), k in zip(blocks, kinds, strict=True) if k]
    # signals: a separate layer, may overlap causes and effects
    for a, b in blocks:
        if draw(st.booleans()) and b - a >= 1:
            start = draw(st.integers(a, b - 1))
            spans.append(Span(start, draw(st.integers(start + 1, b)), "S"))
    return words, Relation.from_spans(spans)


@given(words_and_relation())
def test_render_then_parse_is_the_identity(case):
    words, relation = case
    parsed = parse_tagged(render_tagged(words, relation), " ".join(words))
    assert parsed.words == words
    assert parsed.relation == relation
    assert not parsed.tags_inside_words


@given(words_and_relation())
def test_bio_layers_round_trip(case):
    words, relation = case
    n = len(words)
    assert relation_from_bio(relation.ce_tags(n), relation.sig_tags(n)) == relation
    assert spans_to_bio(bio_to_spans(relation.ce_tags(n)), n) == relation.ce_tags(n)


def test_bio_reading_is_lenient_like_seqeval():
    # an I- after O starts a span; a kind change starts a new span
    assert bio_to_spans(["O", "I-C", "I-C", "B-E", "I-C"]) == [
        Span(1, 3, "C"),
        Span(3, 4, "E"),
        Span(4, 5, "C"),
    ]
