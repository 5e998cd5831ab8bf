"""FairEval counting and scoring (:mod:`causalmine.scoring.faireval`).

Figures taken from published reference outputs (transcribed, sources named at each table):

- ``NER_*``: ``eval/eval_ner.csv`` of github.com/katrinortmann/FairEval at commit df0b0a10
  (reproduced by the default, non-skipping matching) and at commit 5350ef7a (reproduced with
  ``legacy_skip=True``, the loops of its ``src/FairEval.py`` @5d43e1ed), computed on its
  ``data/{target,system}/ner_spans.csv`` (``tests/fixtures/faireval/``) with
  ``config/ner.config`` (labels NONE/EMPTY excluded, focus target, the weights in
  ``faireval.PAPER_WEIGHTS``). Percentages there have 2 decimals, i.e. 4 decimals as fractions.
- ``CNC_SAMPLE_*``: github.com/tanfiona/CausalNewsCorpus
  ``evaluation/subtask2/sample/output/scores.txt`` @f3d65a34, the CASE 2023 scorer
  (``utils_eval_st2.py``: ``evaluate.load("hpi-dhc/FairEval")`` with default arguments) on
  ``evaluation/subtask2/sample/input/{ref/truth.csv,res/submission.json}`` @6f4684a6. The tag
  sequences below are what the scorer's tagger (``get_BIO``/``get_BIO_sig``) makes of those files.
- ``FORMULA_ROWS``: overall rows of ``eval/eval_topofields.csv`` @df0b0a10 and
  ``eval/eval_chunks.csv`` @5350ef7a (count-to-score formulas only; their data is not here).
- ``test_boundary_type_matches_reference_diagram``: the diagram in the reference's
  ``overlap_type`` docstring / README.

Everything else is hand-checked.
"""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.scheme import IOB2, Tokens

from causalmine.scoring import faireval as fe

FIXTURES = Path(__file__).parent / "fixtures" / "faireval"
LABELS = ("LOC", "ORG", "OTH", "PER")


def approx4(percent: float):
    """A published 2-decimal percentage as a fraction to 4 decimals."""
    return pytest.approx(percent / 100, abs=5e-5 + 1e-12)


def _load(name: str) -> list[list[fe.Span]]:
    """Sentences of spans ``(label, start, end_exclusive)``; NONE/EMPTY excluded as in
    ``config/ner.config`` (a sentence left without spans stays, as an empty one)."""
    with gzip.open(FIXTURES / name, "rt", encoding="utf-8") as f:
        blocks = f.read().strip("\n").split("\n\n")
    return [
        [
            (lab, int(first), int(last) + 1)
            for lab, first, last in (line.split("\t") for line in block.splitlines())
            if lab not in ("NONE", "EMPTY")
        ]
        for block in blocks
    ]


@pytest.fixture(scope="module")
def ner() -> tuple[list[list[fe.Span]], list[list[fe.Span]]]:
    gold, system = _load("ner_target_spans.tsv.gz"), _load("ner_system_spans.tsv.gz")
    assert len(gold) == len(system) == 5100  # GermEval 2014 test sentences
    return gold, system


def _ner_counts(ner, legacy_skip: bool) -> fe.FairCounts:
    gold, system = ner
    return sum(
        (
            fe.compare_spans(g, s, legacy_skip=legacy_skip)
            for g, s in zip(gold, system, strict=True)
        ),
        fe.FairCounts(),
    )


# fmt: off
# eval_ner.csv, "Traditional evaluation" (identical at both commits): TP FP FN, Prec Rec F1 (%)
NER_TRADITIONAL = {
    "LOC": (2132, 251, 244, 89.47, 89.73, 89.60),
    "ORG": (1002, 260, 328, 79.40, 75.34, 77.31),
    "OTH": (473, 132, 305, 78.18, 60.80, 68.40),
    "PER": (1552, 151, 142, 91.13, 91.62, 91.37),
    "overall": (5159, 794, 1019, 86.66, 83.51, 85.05),
}
# eval_ner.csv, "Fair evaluation" and "Weighted evaluation":
# TP FP LE BE LBE FN BES BEL BEO, fair Prec Rec F1, weighted Prec Rec F1 (%)
NER_DF0B0A10 = {
    "LOC": (2132, 81, 56, 57, 40, 98, 29, 28, 0, 93.12, 92.43, 92.78, 93.79, 93.08, 93.44),
    "ORG": (1002, 87, 76, 43, 48, 167, 16, 27, 0, 85.46, 80.00, 82.64, 86.30, 81.20, 83.67),
    "OTH": (473, 48, 89, 44, 44, 142, 15, 26, 3, 77.60, 67.24, 72.05, 79.42, 69.55, 74.16),
    "PER": (1552, 37, 31, 36, 23, 55, 11, 25, 0, 94.98, 93.95, 94.46, 95.35, 94.72, 95.04),
    "overall": (5159, 253, 252, 180, 155, 462, 71, 106, 3, 90.42, 87.23, 88.80, 91.14, 88.21, 89.65),
}
NER_5350EF7A = {
    "LOC": (2132, 85, 56, 54, 38, 102, 27, 27, 0, 93.06, 92.37, 92.72, 93.69, 93.00, 93.34),
    "ORG": (1002, 91, 76, 43, 44, 171, 16, 27, 0, 85.31, 79.87, 82.50, 86.15, 81.07, 83.53),
    "OTH": (473, 50, 89, 41, 39, 148, 14, 23, 4, 77.86, 67.04, 72.05, 79.60, 69.17, 74.02),
    "PER": (1552, 41, 31, 35, 23, 56, 11, 24, 0, 94.78, 93.92, 94.35, 95.15, 94.66, 94.91),
    "overall": (5159, 267, 252, 173, 144, 477, 68, 101, 4, 90.34, 87.14, 88.71, 91.04, 88.08, 89.53),
}
# fmt: on
FAIR_NAMES = ("TP", "FP", "LE", "BE", "LBE", "FN", "BES", "BEL", "BEO")


def test_ner_fixture_matches_published_stats_and_traditional_evaluation(ner):
    """The transcription: gold label frequencies ("Target data stats") and traditional table."""
    gold, _ = ner
    assert Counter(s[0] for sent in gold for s in sent) == {
        "LOC": 2376,
        "PER": 1694,
        "ORG": 1330,
        "OTH": 778,
    }
    result = fe.scores(_ner_counts(ner, legacy_skip=False), "traditional")
    assert set(result) == {*LABELS, "overall"}
    for label, (tp, fp, fn, p, r, f) in NER_TRADITIONAL.items():
        row = result[label]
        assert (row["TP"], row["FP"], row["FN"]) == (tp, fp, fn), label
        assert (row["precision"], row["recall"], row["f1"]) == (approx4(p), approx4(r), approx4(f))


@pytest.mark.parametrize(
    ("legacy_skip", "published"),
    [(False, NER_DF0B0A10), (True, NER_5350EF7A)],
    ids=["df0b0a10", "5350ef7a"],
)
def test_ner_matches_published_fair_and_weighted_evaluation(ner, legacy_skip, published):
    counts = _ner_counts(ner, legacy_skip)
    fair = fe.scores(counts, "fair")
    weighted = fe.scores(counts, "weighted", fe.PAPER_WEIGHTS)
    for label, expected in published.items():
        assert tuple(fair[label][n] for n in FAIR_NAMES) == expected[:9], label
        got = [fair[label][m] for m in ("precision", "recall", "f1")]
        got += [weighted[label][m] for m in ("precision", "recall", "f1")]
        assert got == [approx4(x) for x in expected[9:]], label
    # traditional counts do not depend on the matching order
    assert fe.scores(counts, "traditional")["overall"]["FP"] == 794


# fmt: off
# CNC sample, one entry per scored relation: gold C/E tags, gold S tags, predicted C/E, predicted S.
# Rows of truth.csv with num_rs = 0 are not scored; predictions beyond num_rs are dropped.
CNC_SAMPLE = {
    "train_02_155": [(
        "B-C I-C I-C I-C O B-E I-E I-E I-E I-E O", "O O O O O O O O O O O",
        "B-C I-C I-C I-C O B-E I-E I-E I-E I-E O", "O O O O O O O O O O O",
    )],
    "train_02_177": [(
        "B-E I-E I-E I-E I-E I-E I-E I-E O B-C I-C O", "O O O O O O O O O O O O",
        "B-E I-E I-E I-E B-E I-E I-E I-E B-C I-C I-C O", "O O O O O O O O O O O O",
    )],
    "train_02_180": [(
        "B-E I-E I-E I-E I-E I-E I-E I-E I-E B-C I-C I-C I-C I-C I-C I-C I-C I-C I-C I-C I-C O",
        "O O O O O O O O O O O O O O O O O O O O O O",
        "B-E I-E I-E I-E I-E I-E I-E I-E I-E O O O O O O O O O O O O O",
        "O O O O O O O O O B-S O O O O O O O O O O O O",
    )],
    "train_02_188": [(
        "B-C I-C B-E I-E I-E I-E O", "O O B-S O O O O",
        "B-C I-C B-E I-E I-E I-E O", "O O B-S O O O O",
    )],
    "train_02_219": [(
        "B-C I-C B-E I-E I-E I-E I-E I-E I-E I-E I-E I-E O", "O O B-S O O O O O O O O O O",
        "B-C I-C B-E I-E I-E I-E I-E I-E I-E I-E I-E I-E O", "O O B-S I-S I-S O O O O O O O O",
    )],
    "train_04_232": [  # two gold relations and two predictions: paired by the scorer
        ("B-E I-E I-E O B-C I-C I-C O O O O O O O O O O O", "O O O O O O O O O O O O O O O O O O",
         "O O O O B-E I-E I-E B-C I-C I-C I-C I-C I-C I-C I-C I-C I-C O",
         "O O O O O O O B-S O O O O O O O O O O"),
        ("O O O O B-E I-E I-E B-C I-C I-C I-C I-C I-C I-C I-C I-C I-C O",
         "O O O O O O O O O O O O O O O O O O",
         "B-E I-E I-E O B-C I-C I-C O O O O O O O O O O O", "O O O O O O O O O O O O O O O O O O"),
    ],
}
# scores.txt: "### All Examples" and "### Examples with Multiple Relations"
CNC_SAMPLE_ALL = {
    "overall": (0.8, 0.75, 0.7741935483870969),  # recall, precision, F1
    "C": (0.7692307692307693, 0.9090909090909091, 0.8333333333333333),
    "E": (0.8571428571428571, 0.8571428571428571, 0.8571428571428571),
    "S": (0.6666666666666666, 0.2857142857142857, 0.4),
}
CNC_SAMPLE_MULTI = {
    "overall": (1.0, 0.8, 0.888888888888889),
    "C": (1.0, 1.0, 1.0),
    "E": (1.0, 1.0, 1.0),
    "S": (0.0, 0.0, 0.0),
}

# fmt: on


def _cnc_v2_score(legacy_skip: bool) -> tuple[dict, dict]:
    """The CASE 2023 scorer's aggregation: per relation, the C/E and the S sequence are compared
    separately; a sentence with several relations takes the gold-to-prediction pairing with the
    best overall F1 (the first best in permutation order)."""

    def counts(pairs) -> fe.FairCounts:
        return sum(
            (
                fe.compare_bio(g.split(), p.split(), legacy_skip=legacy_skip)
                for gold, pred in pairs
                for g, p in zip(gold, pred, strict=True)
            ),
            fe.FairCounts(),
        )

    everything, multi = [], []
    for relations in CNC_SAMPLE.values():
        golds = [r[:2] for r in relations]
        preds = [r[2:] for r in relations]
        if len(relations) == 1:
            everything.append((golds[0], preds[0]))
            continue
        best, best_pairs = -1.0, None
        for perm in itertools.permutations(range(len(golds))):
            pairs = [(golds[a], preds[b]) for a, b in zip(perm, range(len(preds)), strict=True)]
            f1 = fe.scores(counts(pairs))["overall"]["f1"]
            if f1 > best:
                best, best_pairs = f1, pairs
        everything += best_pairs
        multi += best_pairs
    return fe.scores(counts(everything)), fe.scores(counts(multi))


def test_cnc_sample_matches_published_v2_scorer_output():
    """HF metric defaults: fair mode, micro overall, strict IOB2, no skipping in the matching."""
    everything, multi = _cnc_v2_score(legacy_skip=False)
    for result, published in ((everything, CNC_SAMPLE_ALL), (multi, CNC_SAMPLE_MULTI)):
        for label, (r, p, f) in published.items():
            row = result[label]
            assert (row["recall"], row["precision"], row["f1"]) == pytest.approx(
                (r, p, f), abs=1e-9
            )
    # the two predicted Effects inside one gold Effect (train_02_177) are two boundary errors
    assert (everything["E"]["BE"], everything["E"]["FP"], everything["E"]["FN"]) == (2, 0, 0)
    # the reference script's skipping loops give other figures than the scorer published
    skipping, _ = _cnc_v2_score(legacy_skip=True)
    assert skipping["E"]["precision"] == pytest.approx(0.75)
    assert skipping["overall"]["precision"] != pytest.approx(0.75)


def test_cnc_sample_through_our_span_scorer():
    """The same published output through ``span_scoring`` (what training, ``eval.py`` and
    ``python -m causalmine.score`` report as ``span_*_2023``)."""
    import numpy as np

    from causalmine.scoring.span_scoring import (
        KINDS,
        TALLY_WIDTH,
        RelationTags,
        summarize,
        tally_sentence,
    )

    total = np.zeros((len(KINDS), TALLY_WIDTH))
    for relations in CNC_SAMPLE.values():
        gold = [RelationTags(ce.split(), sig.split()) for ce, sig, _, _ in relations]
        pred = [RelationTags(ce.split(), sig.split()) for _, _, ce, sig in relations]
        total += tally_sentence(gold, pred)
    ours = summarize(total)
    for label, stem in (
        ("overall", "span"),
        ("C", "span_cause"),
        ("E", "span_effect"),
        ("S", "span_signal"),
    ):
        r, p, f = CNC_SAMPLE_ALL[label]
        got = (ours[f"{stem}_recall_2023"], ours[f"{stem}_precision_2023"], ours[f"{stem}_f1_2023"])
        assert got == pytest.approx((r, p, f), abs=1e-9), label


# fmt: off
# overall rows, counts then (traditional, fair, weighted) Prec Rec F1 (%)
FORMULA_ROWS = {
    "topofields@df0b0a10": (
        {"TP": 60168, "TRAD_FP": 4245, "TRAD_FN": 3656, "FP": 1898, "LE": 301, "BE": 1854,
         "LBE": 680, "FN": 1142, "BES": 780, "BEL": 1059, "BEO": 15},
        (93.41, 94.27, 93.84), (94.78, 95.92, 95.35), (95.44, 96.79, 96.11),
    ),
    "chunks@5350ef7a": (
        {"TP": 97649, "TRAD_FP": 2812, "TRAD_FN": 3655, "FP": 192, "LE": 206, "BE": 2366,
         "LBE": 1317, "FN": 256, "BES": 585, "BEL": 1766, "BEO": 15},
        (97.20, 96.39, 96.79), (97.86, 97.80, 97.83), (98.17, 98.69, 98.43),
    ),
}

# fmt: on


@pytest.mark.parametrize("name", FORMULA_ROWS)
def test_scores_formulas_on_published_counts(name):
    row, *published = FORMULA_ROWS[name]
    counts = fe.FairCounts({"X": {**dict.fromkeys(fe.COUNT_NAMES, 0), **row}})
    for (mode, weights), expected in zip(
        (("traditional", None), ("fair", None), ("weighted", fe.PAPER_WEIGHTS)),
        published,
        strict=True,
    ):
        got = fe.scores(counts, mode, weights)["overall"]
        assert (got["precision"], got["recall"], got["f1"]) == tuple(map(approx4, expected)), mode


def test_boundary_type_matches_reference_diagram():
    """span1 ---XXXX--- against the reference's examples (columns 3..6)."""
    gold = (3, 7)
    assert fe.boundary_type(gold, (3, 7)) is None  # identical: TP
    assert fe.boundary_type(gold, (4, 8)) == "BEO"
    assert fe.boundary_type(gold, (2, 6)) == "BEO"
    assert fe.boundary_type(gold, (4, 6)) == "BES"
    assert fe.boundary_type(gold, (3, 5)) == "BES"
    assert fe.boundary_type(gold, (2, 8)) == "BEL"
    assert fe.boundary_type(gold, (2, 7)) == "BEL"
    assert fe.boundary_type(gold, (1, 2)) is None  # no overlap
    assert fe.boundary_type(gold, (7, 9)) is None  # adjacent, no overlap


def _nonzero(counts: fe.FairCounts) -> dict[str, dict[str, float]]:
    return {lab: {n: v for n, v in row.items() if v} for lab, row in counts.per_label.items()}


@pytest.mark.parametrize(
    ("gold", "predicted", "expected"),
    [
        pytest.param([("C", 0, 3)], [("C", 0, 3)], {"C": {"TP": 1}}, id="true-positive"),
        pytest.param(
            [("C", 0, 3)],
            [("E", 0, 3)],
            {"C": {"LE": 1, "TRAD_FN": 1}, "E": {"TRAD_FP": 1}},
            id="label-error",
        ),
        pytest.param(
            [("C", 0, 4)],
            [("C", 1, 3)],
            {"C": {"BE": 1, "BES": 1, "TRAD_FP": 1, "TRAD_FN": 1}},
            id="boundary-error",
        ),
        pytest.param(
            [("C", 0, 4)],
            [("E", 2, 6)],
            {"C": {"LBE": 1, "TRAD_FN": 1}, "E": {"TRAD_FP": 1}},
            id="label-boundary-error",
        ),
        pytest.param(
            [("C", 0, 2)],
            [("E", 5, 7)],
            {"C": {"FN": 1, "TRAD_FN": 1}, "E": {"FP": 1, "TRAD_FP": 1}},
            id="fp-and-fn",
        ),
        pytest.param(  # one predicted span over two gold spans of its label: two BEL
            [("C", 0, 2), ("C", 3, 5)],
            [("C", 0, 5)],
            {"C": {"BE": 2, "BEL": 2, "TRAD_FP": 1, "TRAD_FN": 2}},
            id="one-over-two-same-label",
        ),
        pytest.param(  # ... over a C and an E: a BE for C, then an LBE on the tokens left for E
            [("C", 0, 2), ("E", 3, 5)],
            [("C", 0, 5)],
            {"C": {"BE": 1, "BEL": 1, "TRAD_FP": 1, "TRAD_FN": 1}, "E": {"LBE": 1, "TRAD_FN": 1}},
            id="one-over-two-labels",
        ),
        pytest.param(  # two predicted spans inside one gold span: two BES
            [("E", 0, 8)],
            [("E", 0, 4), ("E", 4, 8)],
            {"E": {"BE": 2, "BES": 2, "TRAD_FP": 2, "TRAD_FN": 1}},
            id="two-inside-one",
        ),
        pytest.param(  # most shared tokens wins: C(0,5) takes all of the gold span, C(0,2) is left
            [("C", 0, 4)],
            [("C", 0, 2), ("C", 0, 5)],
            {"C": {"BE": 1, "BEL": 1, "FP": 1, "TRAD_FP": 2, "TRAD_FN": 1}},
            id="most-shared-candidate",
        ),
        pytest.param(  # shortest gold first: C(3,4) takes token 3 (BEL), C(0,3) token 2 (BEO)
            [("C", 0, 3), ("C", 3, 4)],
            [("C", 2, 4)],
            {"C": {"BE": 2, "BEL": 1, "BEO": 1, "TRAD_FP": 1, "TRAD_FN": 2}},
            id="shortest-gold-first",
        ),
    ],
)
def test_error_types(gold, predicted, expected):
    assert _nonzero(fe.compare_spans(gold, predicted)) == expected


def test_fair_and_traditional_scores_of_a_boundary_error():
    counts = fe.compare_spans([("C", 0, 4), ("E", 5, 8)], [("C", 0, 2), ("E", 5, 8)])
    fair, trad = fe.scores(counts), fe.scores(counts, "traditional")
    # fair: TP 1, BE 1 -> 1 / (1 + 0.5) both ways; traditional: TP 1, FP 1, FN 1
    assert fair["overall"]["precision"] == pytest.approx(2 / 3)
    assert fair["overall"]["recall"] == pytest.approx(2 / 3)
    assert fair["overall"]["f1"] == pytest.approx(2 / 3)
    assert (trad["overall"]["precision"], trad["overall"]["recall"]) == (0.5, 0.5)
    assert (fair["C"]["BE"], fair["C"]["BES"], fair["C"]["f1"]) == (1, 1, 0.0)
    assert (fair["E"]["TP"], fair["E"]["f1"]) == (1, 1.0)
    assert fe.scores(counts, "weighted")["overall"] == fair["overall"]  # no weights: fair


def test_legacy_skip_misses_the_span_after_a_match():
    """Cause and Effect both off by one token: the reference script's loop skips the Effect."""
    gold, predicted = [("C", 0, 2), ("E", 4, 6)], [("C", 0, 3), ("E", 4, 7)]
    assert _nonzero(fe.compare_spans(gold, predicted))["E"] == {
        "BE": 1,
        "BEL": 1,
        "TRAD_FP": 1,
        "TRAD_FN": 1,
    }
    assert _nonzero(fe.compare_spans(gold, predicted, legacy_skip=True))["E"] == {
        "FP": 1,
        "FN": 1,
        "TRAD_FP": 1,
        "TRAD_FN": 1,
    }


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        ("B-C I-C O B-E", [("C", 0, 2), ("E", 3, 4)]),
        ("O I-C I-C B-C", [("C", 3, 4)]),  # I- after O belongs to no span
        ("B-C I-E I-E", [("C", 0, 1)]),  # I- of another type ends the span and is dropped
        ("B-C B-C I-C", [("C", 0, 1), ("C", 1, 3)]),
        ("", []),
    ],
)
def test_bio_spans(tags, spans):
    assert fe.bio_spans(tags.split()) == spans


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-C", "I-C", "B-E", "I-E", "B-S", "I-S"]), max_size=14))
def test_bio_spans_match_seqeval_strict_iob2(tags):
    assert fe.bio_spans(tags) == [(e.tag, e.start, e.end) for e in Tokens(tags, IOB2).entities]


def test_bio_input_errors():
    with pytest.raises(ValueError, match="IOB2"):
        fe.bio_spans(["O", "E-C"])
    with pytest.raises(ValueError, match="gold tags"):
        fe.compare_bio(["O"], ["O", "O"])
    with pytest.raises(ValueError, match="start < end"):
        fe.compare_spans([("C", 2, 2)], [])


def test_counts_add_sum_and_arrays():
    a = fe.compare_bio(["B-C", "I-C", "O", "B-E"], ["B-C", "I-C", "O", "O"])
    b = fe.compare_bio(["B-S", "O"], ["O", "B-S"])
    total = sum([a, b], fe.FairCounts())
    assert total == a + b == sum([a, b])
    assert total.overall["TP"] == 1 and total.overall["FN"] == 2 and total.overall["FP"] == 1
    kinds = ("C", "E", "S")
    array = total.as_array(kinds)
    assert array.shape == (3, len(fe.COUNT_NAMES))
    assert fe.FairCounts.from_array(array, kinds).as_array(kinds).tolist() == array.tolist()
    assert np.all(fe.FairCounts().as_array(kinds) == 0)
    assert a.per_label["C"]["TP"] == 1  # add() on a copy left the parts alone


def test_scores_edge_cases():
    empty = fe.scores(fe.FairCounts())
    assert empty == {
        "overall": pytest.approx(
            {"precision": 0, "recall": 0, "f1": 0, **dict.fromkeys(FAIR_NAMES, 0)}
        )
    }
    only_fp = fe.scores(fe.compare_spans([], [("S", 0, 1)]))
    assert (only_fp["S"]["precision"], only_fp["S"]["recall"], only_fp["S"]["f1"]) == (0, 0, 0)
    assert fe.HF_DEFAULT_MODE == "fair"
    with pytest.raises(ValueError, match="mode"):
        fe.scores(fe.FairCounts(), "strict")
    with pytest.raises(ValueError, match="weighted"):
        fe.scores(fe.FairCounts(), "fair", fe.PAPER_WEIGHTS)
