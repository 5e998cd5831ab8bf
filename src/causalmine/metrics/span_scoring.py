"""CNC-style span scoring, one implementation for training, ``eval.py`` and the benchmarks.

Rules (CASE 2022/2023 shared task, subtask 2):
- only sentences with at least one gold relation are scored;
- predictions beyond the number of gold relations are dropped, missing ones count as all-``O``;
- Cause/Effect and Signal are separate BIO sequences per relation; spans match on exact
  boundaries and label (seqeval semantics);
- for a sentence with several gold relations, predicted relations are paired with gold ones
  in the way that gives the sentence the best F1 (with fixed totals: the most true positives).

Overall is reported two ways: ``official`` is the support-weighted mean of the Cause, Effect
and Signal precision/recall/F1 (the 2022 scorer's Overall), ``micro`` pools the counts.
The 2022 scorer computes its weighting incrementally over sentence groups; this computes the
quantity it intends from pooled counts, and closes one-word ``<ARG0>w</ARG0>`` spans, which
that scorer's tagger leaves open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from causalmine.data.tags import Relation, Span

KINDS = ("C", "E", "S")
KIND_NAMES = {"C": "cause", "E": "effect", "S": "signal"}


@dataclass
class SpanCounts:
    """True positives, false positives and false negatives per span kind."""

    tp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    fp: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    fn: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def add(self, other: SpanCounts) -> None:
        for k in KINDS:
            self.tp[k] += other.tp[k]
            self.fp[k] += other.fp[k]
            self.fn[k] += other.fn[k]

    @property
    def total_tp(self) -> int:
        return sum(self.tp.values())


def _spans(relation: Relation | None) -> set[Span]:
    return set(relation.spans) if relation is not None else set()


def pair_counts(gold: Relation, predicted: Relation | None) -> SpanCounts:
    """Counts for one gold relation scored against one predicted relation (or none)."""
    counts = SpanCounts()
    gold_spans, predicted_spans = _spans(gold), _spans(predicted)
    for s in gold_spans:
        if s in predicted_spans:
            counts.tp[s.kind] += 1
        else:
            counts.fn[s.kind] += 1
    for s in predicted_spans - gold_spans:
        counts.fp[s.kind] += 1
    return counts


def best_assignment(score: list[list[int]]) -> list[int]:
    """Column for each row of a square matrix maximising the summed score (ties: lowest order).

    Exact dynamic programming over subsets; sentences have a handful of relations.
    """
    n = len(score)
    best: dict[int, tuple[int, list[int]]] = {0: (0, [])}
    for row in range(n):
        nxt: dict[int, tuple[int, list[int]]] = {}
        for used, (value, cols) in best.items():
            for col in range(n):
                if used & (1 << col):
                    continue
                key = used | (1 << col)
                cand = (value + score[row][col], [*cols, col])
                if (
                    key not in nxt
                    or cand[0] > nxt[key][0]
                    or (cand[0] == nxt[key][0] and cand[1] < nxt[key][1])
                ):
                    nxt[key] = cand
        best = nxt
    return best[(1 << n) - 1][1]


def score_sentence(gold: Sequence[Relation], predicted: Sequence[Relation]) -> SpanCounts:
    """Counts for one sentence under the CNC rules (empty ``gold``: nothing is scored)."""
    total = SpanCounts()
    if not gold:
        return total
    n = len(gold)
    preds: list[Relation | None] = [*list(predicted)[:n], *[None] * max(0, n - len(predicted))]
    table = [[pair_counts(g, p) for p in preds] for g in gold]
    assignment = best_assignment([[c.total_tp for c in row] for row in table])
    for g, p in enumerate(assignment):
        total.add(table[g][p])
    return total


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summarize(counts: SpanCounts, prefix: str = "span") -> dict[str, float]:
    """Flat metrics: per kind P/R/F1/support, ``official`` (headline) and ``micro`` overall."""
    out: dict[str, float] = {}
    weighted = [0.0, 0.0, 0.0]
    total_support = 0
    for k in KINDS:
        p, r, f = _prf(counts.tp[k], counts.fp[k], counts.fn[k])
        support = counts.tp[k] + counts.fn[k]
        name = KIND_NAMES[k]
        (
            out[f"{prefix}_{name}_precision"],
            out[f"{prefix}_{name}_recall"],
            out[f"{prefix}_{name}_f1"],
        ) = p, r, f
        out[f"{prefix}_{name}_support"] = float(support)
        for i, v in enumerate((p, r, f)):
            weighted[i] += v * support
        total_support += support
    if total_support:
        weighted = [v / total_support for v in weighted]
    out[f"{prefix}_precision"], out[f"{prefix}_recall"], out[f"{prefix}_f1"] = weighted
    tp = sum(counts.tp.values())
    fp = sum(counts.fp.values())
    fn = sum(counts.fn.values())
    out[f"{prefix}_precision_micro"], out[f"{prefix}_recall_micro"], out[f"{prefix}_f1_micro"] = (
        _prf(tp, fp, fn)
    )
    out[f"{prefix}_support"] = float(total_support)
    return out


def score_corpus(
    golds: Sequence[Sequence[Relation]], predictions: Sequence[Sequence[Relation]]
) -> dict[str, float]:
    """All span metrics for a corpus, plus the same on sentences with several gold relations."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} gold sentences but {len(predictions)} predictions")
    everything, multi = SpanCounts(), SpanCounts()
    for gold, predicted in zip(golds, predictions, strict=True):
        counts = score_sentence(gold, predicted)
        everything.add(counts)
        if len(gold) > 1:
            multi.add(counts)
    return {**summarize(everything, "span"), **summarize(multi, "span_multi")}
