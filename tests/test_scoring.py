"""CNC span scoring on hand-made cases, and agreement with seqeval on single relations."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import classification_report

from causalmine.data.tags import Relation, Span, parse_tagged
from causalmine.metrics.span_metric import SpanF1
from causalmine.metrics.span_scoring import best_assignment, score_corpus, score_sentence

CAUSE, EFFECT, SIGNAL = "C", "E", "S"


def rel(*spans: tuple[int, int, str]) -> Relation:
    return Relation.from_spans([Span(a, b, k) for a, b, k in spans])


GOLD = rel((0, 3, EFFECT), (3, 4, SIGNAL), (4, 7, CAUSE))


def test_exact_match_is_perfect():
    m = score_corpus([[GOLD]], [[GOLD]])
    assert m["span_f1"] == m["span_f1_micro"] == 1.0
    assert m["span_cause_support"] == m["span_effect_support"] == m["span_signal_support"] == 1


def test_partial_boundary_counts_as_a_miss_and_a_false_alarm():
    predicted = rel((0, 2, EFFECT), (3, 4, SIGNAL), (4, 7, CAUSE))  # effect one word short
    c = score_sentence([GOLD], [predicted])
    assert (c.tp[EFFECT], c.fp[EFFECT], c.fn[EFFECT]) == (0, 1, 1)
    assert (c.tp[CAUSE], c.tp[SIGNAL]) == (1, 1)
    m = score_corpus([[GOLD]], [[predicted]])
    assert m["span_effect_f1"] == 0.0 and m["span_cause_f1"] == 1.0
    assert m["span_f1_micro"] == pytest.approx(2 / 3)  # P = 2/3, R = 2/3


def test_missing_relation_scores_as_all_O():
    second = rel((8, 9, CAUSE), (10, 12, EFFECT))
    c = score_sentence([GOLD, second], [GOLD])
    assert c.total_tp == 3 and sum(c.fn.values()) == 2 and sum(c.fp.values()) == 0


def test_extra_predictions_beyond_gold_count_are_dropped():
    noise = rel((8, 9, CAUSE), (10, 12, EFFECT))
    c = score_sentence([GOLD], [GOLD, noise])
    assert sum(c.fp.values()) == 0 and c.total_tp == 3


def test_extra_predictions_are_dropped_in_order():
    noise = rel((8, 9, CAUSE), (10, 12, EFFECT))
    c = score_sentence([GOLD], [noise, GOLD])  # only the first prediction is kept
    assert c.total_tp == 0 and sum(c.fp.values()) == 2


def test_swapped_relation_order_uses_the_best_pairing():
    second = rel((8, 9, CAUSE), (10, 12, EFFECT))
    c = score_sentence([GOLD, second], [second, GOLD])
    assert c.total_tp == 5 and sum(c.fp.values()) == sum(c.fn.values()) == 0


def test_sentence_without_gold_relation_is_ignored():
    m = score_corpus([[], [GOLD]], [[rel((0, 1, CAUSE), (1, 2, EFFECT))], [GOLD]])
    assert m["span_f1"] == 1.0


def test_one_word_spans():
    gold = parse_tagged("<ARG0>rain</ARG0> <SIG0>caused</SIG0> <ARG1>floods</ARG1>").relation
    assert score_corpus([[gold]], [[gold]])["span_f1"] == 1.0
    shifted = rel((0, 2, CAUSE), (1, 2, SIGNAL), (2, 3, EFFECT))
    assert score_corpus([[gold]], [[shifted]])["span_cause_f1"] == 0.0


def test_signal_inside_a_cause_is_scored_on_its_own_layer():
    gold = parse_tagged(
        "<ARG1>talks are underway</ARG1> <ARG0><SIG0>to</SIG0> end the strike</ARG0>"
    ).relation
    no_signal = rel((0, 3, EFFECT), (3, 7, CAUSE))
    m = score_corpus([[gold]], [[no_signal]])
    assert m["span_cause_f1"] == m["span_effect_f1"] == 1.0
    assert m["span_signal_recall"] == 0.0


def test_official_overall_is_support_weighted_and_micro_pools_counts():
    golds = [
        [rel((0, 1, CAUSE), (2, 3, EFFECT), (1, 2, SIGNAL))],
        [rel((0, 1, CAUSE), (2, 3, EFFECT))],
    ]
    preds = [[rel((0, 1, CAUSE), (2, 3, EFFECT))], [rel((0, 1, CAUSE), (3, 4, EFFECT))]]
    m = score_corpus(golds, preds)
    # cause 2/2 (F1 1), effect 1 of 2 with 1 FP (F1 .5), signal 0 of 1 (F1 0); supports 2, 2, 1
    assert m["span_f1"] == pytest.approx((2 * 1.0 + 2 * 0.5 + 1 * 0.0) / 5)
    assert m["span_f1_micro"] == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))


def test_multi_relation_subset():
    second = rel((8, 9, CAUSE), (10, 12, EFFECT))
    m = score_corpus([[GOLD], [GOLD, second]], [[GOLD], [GOLD]])
    assert m["span_f1"] < 1.0
    assert m["span_multi_recall_micro"] == pytest.approx(3 / 5)
    assert m["span_multi_support"] == 5


def test_best_assignment_is_exact():
    assert best_assignment([[1, 5], [4, 1]]) == [1, 0]
    assert best_assignment([[3, 0, 0], [0, 0, 3], [0, 3, 0]]) == [0, 2, 1]


def test_metric_accumulates_like_the_function():
    golds = [[GOLD], [], [GOLD, rel((8, 9, CAUSE), (10, 12, EFFECT))]]
    preds = [[GOLD], [GOLD], [rel((8, 9, CAUSE), (10, 11, EFFECT))]]
    metric = SpanF1()
    metric.update(golds[:2], preds[:2])
    metric.update([*golds[2:], None], [*preds[2:], []])  # None: no span annotation
    assert metric.compute() == pytest.approx(score_corpus(golds, preds))


@st.composite
def bio_pair(draw):
    n = draw(st.integers(1, 12))
    tags = st.sampled_from(["O", "B-C", "I-C", "B-E", "I-E"])
    return draw(st.lists(tags, min_size=n, max_size=n)), draw(
        st.lists(tags, min_size=n, max_size=n)
    )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=200)
@given(st.lists(bio_pair(), min_size=1, max_size=6))
def test_single_relation_cause_effect_agree_with_seqeval(pairs):
    from causalmine.data.tags import relation_from_bio

    golds = [[relation_from_bio(g, ["O"] * len(g))] for g, _ in pairs]
    preds = [[relation_from_bio(p, ["O"] * len(p))] for _, p in pairs]
    ours = score_corpus(golds, preds)
    report = classification_report(
        [g for g, _ in pairs], [p for _, p in pairs], output_dict=True, zero_division=0
    )
    for kind, name in (("C", "cause"), ("E", "effect")):
        if kind in report:
            assert ours[f"span_{name}_f1"] == pytest.approx(report[kind]["f1-score"])
            assert ours[f"span_{name}_support"] == report[kind]["support"]
