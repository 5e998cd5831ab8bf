"""CNC span scoring on hand-made cases: the official 2022 rules (tagger quirk, grouping,
support-weighted merging, pairing), our pooled variant, and agreement with seqeval."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report

from causalmine.data.tags import parse_tagged, relation_from_bio
from causalmine.schema import Relation, Span
from causalmine.scoring.span_metric import SpanF1
from causalmine.scoring.span_scoring import official_tags, score_corpus

CAUSE, EFFECT, SIGNAL = "C", "E", "S"
WORDS = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10", "w11", "w12"]


def rel(*spans: tuple[int, int, str]) -> Relation:
    return Relation.from_spans([Span(a, b, k) for a, b, k in spans])


def score(golds, preds, words=WORDS):
    return score_corpus([words] * len(golds), golds, preds)


GOLD = rel((0, 3, EFFECT), (3, 4, SIGNAL), (4, 7, CAUSE))
SECOND = rel((8, 10, CAUSE), (10, 12, EFFECT))


def test_exact_match_is_perfect_under_every_rule():
    m = score([[GOLD]], [[GOLD]])
    assert m["span_f1"] == m["span_f1_pooled"] == m["span_f1_2023"] == 1.0
    assert m["span_cause_support"] == m["span_effect_support"] == m["span_signal_support"] == 1


def test_partial_boundary_counts_as_a_miss_and_a_false_alarm():
    predicted = rel((0, 2, EFFECT), (3, 4, SIGNAL), (4, 7, CAUSE))  # effect one word short
    m = score([[GOLD]], [[predicted]])
    assert m["span_effect_f1"] == 0.0 and m["span_cause_f1"] == m["span_signal_f1"] == 1.0
    assert m["span_f1"] == pytest.approx(2 / 3)  # supports 1, 1, 1
    assert m["span_f1_pooled"] == pytest.approx(2 / 3)  # P = 2/3, R = 2/3


def test_missing_relation_scores_as_all_O_and_extra_ones_are_dropped_in_order():
    m = score([[GOLD, SECOND]], [[GOLD]])
    assert m["span_recall_pooled"] == pytest.approx(3 / 5)
    assert m["span_precision_pooled"] == 1.0
    m = score([[GOLD]], [[SECOND, GOLD]])  # only the first prediction is kept
    assert m["span_f1"] == m["span_f1_pooled"] == 0.0


def test_swapped_relation_order_uses_the_best_pairing():
    m = score([[GOLD, SECOND]], [[SECOND, GOLD]])
    assert m["span_f1"] == m["span_f1_pooled"] == m["span_f1_2023"] == 1.0


def test_sentence_without_gold_relation_is_ignored():
    m = score([[], [GOLD]], [[rel((0, 1, CAUSE), (1, 2, EFFECT))], [GOLD]])
    assert m["span_f1"] == 1.0 and m["span_support"] == 3


def test_official_tagger_never_closes_a_one_word_cause_or_effect():
    # the CNC scorers' tagger: a word holding <ARG0> opens, even when it also closes
    assert official_tags("<ARG0>rain</ARG0> and wind <ARG1>flood</ARG1> here") == (
        ["B-C", "I-C", "I-C", "B-E", "I-E"],
        ["O"] * 5,
    )
    # signals are closed on the same word
    assert official_tags("a <SIG0>so</SIG0> b <SIG1>thus and</SIG1> c")[1] == [
        "O",
        "B-S",
        "O",
        "B-S",
        "I-S",
        "O",
    ]


def test_one_word_spans_official_and_pooled_differ_as_the_official_scorer_does():
    words = ["rain", "caused", "floods", "in", "town"]
    gold = parse_tagged(
        "<ARG0>rain</ARG0> <SIG0>caused</SIG0> <ARG1>floods in town</ARG1>"
    ).relation
    # the predicted cause runs on to the effect, which is the gold cause as the official tagger reads it
    predicted = rel((0, 2, CAUSE), (1, 2, SIGNAL), (2, 5, EFFECT))
    m = score_corpus([words], [[gold]], [[predicted]])
    assert m["span_cause_f1"] == 1.0 and m["span_cause_f1_pooled"] == 0.0


def test_signal_inside_a_cause_is_scored_on_its_own_layer():
    words = ["talks", "are", "underway", "to", "end", "the", "strike"]
    gold = parse_tagged(
        "<ARG1>talks are underway</ARG1> <ARG0><SIG0>to</SIG0> end the strike</ARG0>"
    ).relation
    no_signal = rel((0, 3, EFFECT), (3, 7, CAUSE))
    m = score_corpus([words], [[gold]], [[no_signal]])
    assert m["span_cause_f1"] == m["span_effect_f1"] == 1.0
    assert m["span_signal_recall"] == 0.0


def test_official_overall_is_support_weighted_and_pooled_is_micro():
    golds = [
        [rel((0, 2, CAUSE), (3, 5, EFFECT), (2, 3, SIGNAL))],
        [rel((0, 2, CAUSE), (3, 5, EFFECT))],
    ]
    preds = [[rel((0, 2, CAUSE), (3, 5, EFFECT))], [rel((0, 2, CAUSE), (5, 7, EFFECT))]]
    m = score(golds, preds)
    # cause 2/2 (F1 1), effect 1 of 2 with 1 FP (F1 .5), signal 0 of 1 (F1 0); supports 2, 2, 1
    assert m["span_f1"] == pytest.approx((2 * 1.0 + 2 * 0.5 + 1 * 0.0) / 5)
    assert m["span_f1_pooled"] == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))


def test_multi_relation_sentences_are_scored_apart_and_merged_by_support():
    # a single-relation sentence, perfect; a two-relation sentence whose predictions add a
    # signal that no gold relation has: the official scorer gives that kind no weight there
    noisy = rel((0, 3, EFFECT), (3, 4, SIGNAL), (4, 7, CAUSE), (7, 8, SIGNAL))
    second_with_signal = rel((8, 10, CAUSE), (10, 12, EFFECT), (12, 13, SIGNAL))
    no_signal = rel((0, 3, EFFECT), (4, 7, CAUSE))
    m = score([[GOLD], [no_signal, SECOND]], [[GOLD], [noisy, second_with_signal]])
    # multi group: cause 2/2, effect 2/2, signal: no gold -> weight 0
    assert m["span_multi_f1"] == 1.0 and m["span_multi_signal_support"] == 0
    assert m["span_f1"] == 1.0  # single group perfect, multi group perfect where it has gold
    assert m["span_precision_pooled"] == pytest.approx(7 / 10)  # pooled counts see the 3 FPs


def test_multi_relation_group_is_averaged_not_pooled():
    # group 1 (single): cause right, effect wrong; group 2 (two relations): all right.
    # official cause F1 = (1·1 + 1·2) / 3 = 1; effect F1 = (0·1 + 1·2) / 3
    single = rel((0, 2, CAUSE), (3, 5, EFFECT))
    wrong_effect = rel((0, 2, CAUSE), (3, 6, EFFECT))
    m = score([[single], [single, SECOND]], [[wrong_effect], [single, SECOND]])
    assert m["span_cause_f1"] == 1.0
    assert m["span_effect_f1"] == pytest.approx(2 / 3)
    assert m["span_f1"] == pytest.approx((3 * 1.0 + 3 * (2 / 3)) / 6)


def test_metric_accumulates_like_the_function():
    golds = [[GOLD], [], [GOLD, SECOND]]
    preds = [[GOLD], [GOLD], [rel((8, 10, CAUSE), (10, 11, EFFECT))]]
    metric = SpanF1()
    metric.update([WORDS] * 2, golds[:2], preds[:2])
    metric.update([WORDS] * 2, [*golds[2:], None], [*preds[2:], []])  # None: no span annotation
    assert metric.compute() == pytest.approx(score(golds, preds))


@st.composite
def bio_pair(draw):
    n = draw(st.integers(1, 12))
    tags = st.sampled_from(["O", "B-C", "I-C", "B-E", "I-E"])
    return draw(st.lists(tags, min_size=n, max_size=n)), draw(
        st.lists(tags, min_size=n, max_size=n)
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=200, deadline=None)
@given(st.lists(bio_pair(), min_size=1, max_size=6))
def test_single_relations_agree_with_seqeval(pairs):
    """Pooled figures are seqeval's on the BIO tags; the official ones equal them whenever no
    cause or effect spans a single word (the only place its tagger departs)."""
    golds = [[relation_from_bio(g, ["O"] * len(g))] for g, _ in pairs]
    preds = [[relation_from_bio(p, ["O"] * len(p))] for _, p in pairs]
    ours = score_corpus([[f"w{i}" for i in range(len(g))] for g, _ in pairs], golds, preds)
    report = classification_report(
        [g for g, _ in pairs], [p for _, p in pairs], output_dict=True, zero_division=0
    )
    one_word = any(s.end - s.start == 1 for r in golds + preds for x in r for s in x.spans)
    for kind, name in (("C", "cause"), ("E", "effect")):
        if kind in report and report[kind]["support"]:
            assert ours[f"span_{name}_f1_pooled"] == pytest.approx(report[kind]["f1-score"])
            assert ours[f"span_{name}_support"] == report[kind]["support"] or one_word
            if not one_word:
                assert ours[f"span_{name}_f1"] == pytest.approx(report[kind]["f1-score"])
