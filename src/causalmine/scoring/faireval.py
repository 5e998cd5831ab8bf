"""FairEval span counting (Ortmann, LREC 2022: "Fine-Grained Error Analysis and Fair Evaluation
of Labeled Spans"), as the CASE 2023 Causal News Corpus scorer used it through the Hugging Face
metric ``evaluate.load("hpi-dhc/FairEval")`` with default arguments. Our own implementation.

Error types (per sequence, gold = "target", predicted = "system"):

- ``TP`` identical label and boundaries; ``LE`` identical boundaries, other label;
- ``BE`` same label, overlapping, other boundaries, split into ``BES`` (predicted span inside the
  gold one), ``BEL`` (predicted span contains the gold one) and ``BEO`` (other overlap);
- ``LBE`` other label and overlapping, other boundaries;
- ``FN`` gold span left unmatched; ``FP`` predicted span left unmatched.

Matching, in the reference's order: exact matches (TP), then same boundaries (LE); the remaining
spans are sorted by length (shortest first, stable), then BE and then LBE each run three passes:
(1) unmatched gold against unmatched predicted spans, (2) unmatched gold against already matched
predicted spans that still have tokens not shared with their earlier partner, (3) unmatched
predicted against already matched gold spans with such tokens. Among several candidates the most
similar wins: most shared tokens, then fewest tokens only in the span being matched, then fewest
only in the candidate, then the shortest candidate, then the first in list order. Every match
removes the shared tokens from both spans. So one predicted span covering two gold spans gives
two boundary errors, not a boundary error plus an unmatched span. Per label, ``TP``, ``LE``,
``BE``, ``LBE`` and ``FN`` count for the gold label and ``FP`` for the predicted label (the
reference's default ``focus="target"``, which the Hugging Face metric keeps).

Scores (a zero denominator gives 0; ``overall`` applies the same formulas to counts summed over
labels, i.e. micro averaging, as the reference's "overall" rows and the metric's
``overall_precision``/``overall_recall``/``overall_f1``)::

    traditional  P = TP / (TP + FP_t)            R = TP / (TP + FN_t)
                 FP_t, FN_t: predicted / gold spans without an exact match (TRAD_FP, TRAD_FN)
    fair         P = TP / (TP + FP + (LE + BE + LBE) / 2)
                 R = TP / (TP + FN + (LE + BE + LBE) / 2)
    weighted     P = TP_w / (TP_w + FP_w)        R = TP_w / (TP_w + FN_w),
                 X_w = sum over error types e of weights[e][X] * count[e]
    F1 = 2 P R / (P + R)

In the reference, "weighted" without weights equals "fair" (:data:`FAIR_WEIGHTS`); the example
evaluations used :data:`PAPER_WEIGHTS`. (What the Hugging Face metric uses for ``mode="weighted"``
without weights is not verified here; pass ``weights`` explicitly.)

Hugging Face metric defaults (README of huggingface.co/spaces/hpi-dhc/FairEval): ``mode="fair"``
(:data:`HF_DEFAULT_MODE`), ``error_format="count"`` (TP, FP, … as raw counts); tags are read as
seqeval does in its strict mode, the scheme auto-detected from the references (IOB2 for ``B-``,
``I-`` and ``O`` tags): an entity starts at ``B-X`` and runs over the following ``I-X``; an
``I-`` tag that does not continue a ``B-``/``I-`` of the same type belongs to no entity. Every
sequence given to ``add()`` is compared on its own and the counts are summed. The CASE 2023
scorer adds the Cause/Effect sequence and the Signal sequence of each relation separately and
reads ``overall_f1``, ``overall_precision``, ``overall_recall``, ``results["C"|"E"|"S"]`` and the
counts ``TP, FP, FN, BE, LE, LBE``.

The reference's own loops (``for t in target_spans: ... target_spans.remove(t)``) skip the span
after each match within a pass; ``legacy_skip=True`` reproduces that. The Hugging Face metric does
not skip: without it we reproduce the CNC scorer's published sample output, with it we do not
(``tests/test_faireval.py``).

Sources read (public GitHub copies): ``katrinortmann/FairEval`` ``src/FairEval.py`` (commit
5d43e1ed: ``overlap_type``, ``compare_spans``, ``precision``, ``recall``, ``fscore``,
``calculate_results``, ``get_spans``), ``README.md``, ``config/ner.config``,
``eval/eval_{ner,chunks,topofields}.csv`` (commits 5350ef7a, which the skipping loop reproduces,
and df0b0a10, which the non-skipping one reproduces), ``data/{target,system}/ner_spans.csv``;
``tanfiona/CausalNewsCorpus`` ``evaluation/subtask2/utils_eval_st2.py`` (the CASE 2023 scorer),
``evaluation/subtask2/sample/`` (input, and ``output/scores.txt`` at commit f3d65a34); the
Hugging Face space's README (revisions 79a6fc4, 3109162, 0e946aa) and the header of its
``FairEval.py`` (seqeval ``Entities``/``auto_detect`` input handling, ``from .FairEvalUtils
import *``). The space's ``FairEvalUtils.py`` itself was not readable here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

Span = tuple[str, int, int]
"""``(label, start, end)`` on one token sequence, ``end`` exclusive."""

COUNT_NAMES = ("TP", "FP", "FN", "LE", "BE", "LBE", "BES", "BEL", "BEO", "TRAD_FP", "TRAD_FN")
MODES = ("traditional", "fair", "weighted")
HF_DEFAULT_MODE = "fair"

Weights = Mapping[str, Mapping[str, float]]
TRADITIONAL_WEIGHTS: Weights = {"TP": {"TP": 1}, "TRAD_FP": {"FP": 1}, "TRAD_FN": {"FN": 1}}
_HALF = {"TP": 0, "FP": 0.5, "FN": 0.5}
FAIR_WEIGHTS: Weights = {
    "TP": {"TP": 1},
    "FP": {"FP": 1},
    "FN": {"FN": 1},
    "LE": _HALF,
    "BE": _HALF,
    "LBE": _HALF,
}
PAPER_WEIGHTS: Weights = {  # config/*.config of the reference: boundary errors as half right
    "TP": {"TP": 1},
    "FP": {"FP": 1},
    "FN": {"FN": 1},
    "LE": _HALF,
    "LBE": _HALF,
    "BES": {"TP": 0.5, "FP": 0, "FN": 0.5},
    "BEL": {"TP": 0.5, "FP": 0.5, "FN": 0},
    "BEO": {"TP": 0.5, "FP": 0.25, "FN": 0.25},
}


@dataclass
class FairCounts:
    """Error counts per label: ``per_label[label][name]`` for every name in :data:`COUNT_NAMES`."""

    per_label: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self, label: str) -> dict[str, float]:
        """The counts of ``label`` (created as zeros)."""
        return self.per_label.setdefault(label, dict.fromkeys(COUNT_NAMES, 0))

    def add(self, other: FairCounts) -> FairCounts:
        """Add ``other`` in place; returns ``self``."""
        for label, counts in other.per_label.items():
            row = self.row(label)
            for name, value in counts.items():
                row[name] += value
        return self

    def __add__(self, other: FairCounts) -> FairCounts:
        return FairCounts().add(self).add(other)

    def __radd__(self, other: object) -> FairCounts:
        if other == 0:  # sum() starts from 0
            return FairCounts().add(self)
        return NotImplemented

    @property
    def overall(self) -> dict[str, float]:
        """Counts summed over labels."""
        return {n: sum(row[n] for row in self.per_label.values()) for n in COUNT_NAMES}

    def as_array(self, labels: Sequence[str]) -> np.ndarray:
        """``[len(labels), len(COUNT_NAMES)]`` counts (zeros for absent labels)."""
        return np.array(
            [[self.per_label.get(lab, {}).get(n, 0) for n in COUNT_NAMES] for lab in labels],
            dtype=float,
        )

    @classmethod
    def from_array(cls, array: np.ndarray, labels: Sequence[str]) -> FairCounts:
        """Inverse of :meth:`as_array`."""
        array = np.asarray(array)
        return cls(
            {
                lab: dict(zip(COUNT_NAMES, map(float, row), strict=True))
                for lab, row in zip(labels, array, strict=True)
            }
        )


@dataclass(eq=False)
class _Span:
    label: str
    first: int
    last: int  # inclusive, as in the reference
    tokens: set[int]


def boundary_type(gold: tuple[int, int], predicted: tuple[int, int]) -> str | None:
    """``"BES"``, ``"BEL"`` or ``"BEO"`` for overlapping ``(start, end)`` pairs (end exclusive)
    with different boundaries; ``None`` when they are identical or do not overlap."""
    (a, b), (c, d) = gold, predicted
    if (a, b) == (c, d) or d <= a or c >= b:
        return None
    if a <= c and d <= b:
        return "BES"
    if c <= a and b <= d:
        return "BEL"
    return "BEO"


def _kind(g: _Span, p: _Span) -> str | None:
    return boundary_type((g.first, g.last + 1), (p.first, p.last + 1))


def _fits(g: _Span, p: _Span, same_label: bool, shared: bool) -> bool:
    return (
        (g.label == p.label) == same_label
        and _kind(g, p) is not None
        and (not shared or bool(g.tokens & p.tokens))
    )


def _closest(anchor: _Span, candidates: list[_Span]) -> _Span:
    return min(  # min keeps the first of equals, like the reference's stable sort
        candidates,
        key=lambda c: (
            -len(anchor.tokens & c.tokens),
            len(anchor.tokens - c.tokens),
            len(c.tokens - anchor.tokens),
            c.last - c.first,
        ),
    )


def _walk(items: list[_Span], legacy_skip: bool) -> Iterator[_Span]:
    if not legacy_skip:
        yield from list(items)
        return
    i = 0  # a live list iterator: removing the current item skips the next one
    while i < len(items):
        yield items[i]
        i += 1


def compare_spans(
    gold: Sequence[Span], predicted: Sequence[Span], *, legacy_skip: bool = False
) -> FairCounts:
    """FairEval counts for the spans of one sequence (see the module docstring).

    Spans are ``(label, start, end_exclusive)`` and assumed distinct (BIO spans are), as the
    traditional counts treat them as sets. ``legacy_skip`` reproduces the skipping loops of the
    reference script (commit 5d43e1ed); the Hugging Face metric does not skip.
    """
    golds, preds = (
        [_Span(lab, s, e - 1, set(range(s, e))) for lab, s, e in spans]
        for spans in (gold, predicted)
    )
    if any(s.last < s.first for s in golds + preds):
        raise ValueError("spans must have start < end")
    counts = FairCounts()
    for s in golds + preds:
        counts.row(s.label)
    gold_set, pred_set = set(gold), set(predicted)
    for label, *_ in gold_set - pred_set:
        counts.row(label)["TRAD_FN"] += 1
    for label, *_ in pred_set - gold_set:
        counts.row(label)["TRAD_FP"] += 1

    for same_label, name in ((True, "TP"), (False, "LE")):  # 1:1 on identical boundaries
        for g in list(golds):
            p = next(
                (
                    p
                    for p in preds
                    if (p.first, p.last) == (g.first, g.last) and (p.label == g.label) == same_label
                ),
                None,
            )
            if p is not None:
                counts.row(g.label)[name] += 1
                golds.remove(g)
                preds.remove(p)

    def record(g: _Span, p: _Span, name: str) -> None:
        counts.row(g.label)[name] += 1
        if name == "BE":
            counts.row(g.label)[_kind(g, p)] += 1
        shared = g.tokens & p.tokens
        g.tokens -= shared
        p.tokens -= shared

    golds.sort(key=lambda s: s.last - s.first)
    preds.sort(key=lambda s: s.last - s.first)
    matched_golds: list[_Span] = []
    matched_preds: list[_Span] = []
    for same_label, name in ((True, "BE"), (False, "LBE")):
        for g in _walk(golds, legacy_skip):
            if cands := [p for p in preds if _fits(g, p, same_label, shared=False)]:
                p = _closest(g, cands)
                record(g, p, name)
                golds.remove(g)
                preds.remove(p)
                matched_golds.append(g)
                matched_preds.append(p)
        for g in _walk(golds, legacy_skip):
            if cands := [p for p in matched_preds if _fits(g, p, same_label, shared=True)]:
                record(g, _closest(g, cands), name)
                golds.remove(g)
                matched_golds.append(g)
        for p in _walk(preds, legacy_skip):
            if cands := [g for g in matched_golds if _fits(g, p, same_label, shared=True)]:
                record(_closest(p, cands), p, name)
                preds.remove(p)
                matched_preds.append(p)
    for g in golds:
        counts.row(g.label)["FN"] += 1
    for p in preds:
        counts.row(p.label)["FP"] += 1
    return counts


def bio_spans(tags: Sequence[str]) -> list[Span]:
    """Spans of one IOB2 tag sequence as seqeval's strict mode (the Hugging Face metric) reads
    them: ``B-X`` opens, following ``I-X`` continue, any other ``I-`` is dropped."""
    spans: list[Span] = []
    label, start = None, 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, name = tag[:1], tag[1:].strip("-") or "_"
        if prefix not in ("B", "I", "O"):
            raise ValueError(f"not an IOB2 tag: {tag!r}")
        if label is not None and not (prefix == "I" and name == label):
            spans.append((label, start, i))
            label = None
        if prefix == "B":
            label, start = name, i
    return spans


def compare_bio(
    gold_tags: Sequence[str], predicted_tags: Sequence[str], *, legacy_skip: bool = False
) -> FairCounts:
    """:func:`compare_spans` on the :func:`bio_spans` of two tag sequences of equal length."""
    if len(gold_tags) != len(predicted_tags):
        raise ValueError(f"{len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
    return compare_spans(bio_spans(gold_tags), bio_spans(predicted_tags), legacy_skip=legacy_skip)


def _prf(row: Mapping[str, float], weights: Weights) -> dict[str, float]:
    tp, fp, fn = (
        sum(w.get(x, 0) * row.get(e, 0) for e, w in weights.items()) for x in ("TP", "FP", "FN")
    )
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def scores(
    counts: FairCounts, mode: str = HF_DEFAULT_MODE, weights: Weights | None = None
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and the mode's counts per label and ``"overall"`` (micro).

    ``mode``: ``"traditional"`` (counts TP, FP, FN = exact-match TP, TRAD_FP, TRAD_FN),
    ``"fair"`` (the Hugging Face default) or ``"weighted"`` (``weights``, default
    :data:`FAIR_WEIGHTS` as in the reference). Formulas in the module docstring.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if weights is not None and mode != "weighted":
        raise ValueError("weights apply to mode='weighted' only")
    table = {"traditional": TRADITIONAL_WEIGHTS, "fair": FAIR_WEIGHTS}.get(mode)
    table = table or weights or FAIR_WEIGHTS
    shown = (
        {"TP": "TP", "FP": "TRAD_FP", "FN": "TRAD_FN"}
        if mode == "traditional"
        else {n: n for n in COUNT_NAMES[:9]}
    )
    rows = {**counts.per_label, "overall": counts.overall}
    return {
        lab: {**_prf(row, table), **{k: row[n] for k, n in shown.items()}}
        for lab, row in rows.items()
    }
