"""Span scoring under the Causal News Corpus rules: one implementation for training, ``eval.py``,
``python -m causalmine.score`` and the benchmarks.

Common rules (CASE 2022 and 2023, subtask 2): only sentences with at least one gold relation are
scored; predicted relations beyond the gold count are dropped (the first ones kept) and missing
ones are all-``O``; Cause/Effect and Signal are two BIO sequences per relation.

Three families of figures:

- ``span_f1``, ``span_precision``, ``span_recall``, ``span_{cause,effect,signal}_*`` — **the CNC
  2022 official scorer**, quirks included, verified to 4 decimals against its outputs
  (``tests/test_official_scorer.py``): tags come from its tagger (:func:`official_tags`, which
  never closes a one-word ``<ARG0>w</ARG0>`` span: the span runs on to the next tag);
  single-relation sentences are pooled and scored with seqeval; each multi-relation sentence
  is scored on its own with the pairing of predicted to gold relations that gives the best
  overall F1 (the first best in ``itertools.permutations`` order); per kind, the groups'
  precision/recall/F1 are averaged weighted by their gold support, and Overall is the
  support-weighted average of Cause, Effect and Signal. A kind without gold spans in a group
  carries no weight there, so its false positives cost nothing.
- ``span_*_pooled`` — ours, cleaner: spans as parsed (one-word spans closed), counts pooled over
  all sentences after the pairing with the most true positives, micro P/R/F1.
- ``span_*_2023`` — the CNC V2 (CASE 2023) scorer: the same tagger and pairing search, FairEval
  counts (:mod:`causalmine.scoring.faireval`) pooled over all scored relations.

``span_multi_*`` repeat the official figures on sentences with several gold relations.

Every sentence's contribution is additive (a :class:`SpanTally`), so the torchmetrics wrapper
sums tallies across devices and :func:`summarize` turns the total into figures.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

import causalmine.scoring.faireval as faireval
from causalmine.data.tags import render_tagged
from causalmine.schema import Relation

KINDS = ("C", "E", "S")
KIND_NAMES = {"C": "cause", "E": "effect", "S": "signal"}

# Columns of a tally row (one row per kind)
_COUNTS = 3  # tp, fp, fn
_WEIGHTED = 4  # precision·support, recall·support, f1·support, support
OFFICIAL_SINGLE = slice(0, 3)
OFFICIAL_MULTI = slice(3, 7)
POOLED = slice(7, 10)
FAIR = slice(10, 10 + len(faireval.COUNT_NAMES))
TALLY_WIDTH = FAIR.stop


def official_tags(tagged: str) -> tuple[list[str], list[str]]:
    """Cause/Effect and Signal BIO tags of a tagged text, exactly as the CNC scorers' tagger
    makes them (words split on single spaces).

    Per word, the first matching rule sets the tag and the next word's default: ``<ARG0>`` →
    ``B-C`` then ``I-C``; ``</ARG0>`` → ``I-C`` then ``O``; the same for ``<ARG1>`` / ``E``.
    A word holding both ``<ARG0>`` and ``</ARG0>`` opens only, so the span runs on. Signals:
    ``<SIGn>`` → ``B-S`` (closed at once when the word also holds ``</SIGn>``), ``</SIGn>`` →
    ``I-S`` then ``O``.
    """
    ce: list[str] = []
    sig: list[str] = []
    ce_next = sig_next = "O"
    for word in tagged.split(" "):
        ce_tag, sig_tag = ce_next, sig_next
        for opening, closing, kind in (("<ARG0>", "</ARG0>", "C"), ("<ARG1>", "</ARG1>", "E")):
            if opening in word:
                ce_tag, ce_next = f"B-{kind}", f"I-{kind}"
                break
            if closing in word:
                ce_tag, ce_next = f"I-{kind}", "O"
                break
        if "<SIG" in word:
            sig_tag = "B-S"
            sig_next = "O" if "</SIG" in _SIGNAL_OPENING.sub("", word) else "I-S"
        elif "</SIG" in word:
            sig_tag, sig_next = "I-S", "O"
        ce.append(ce_tag)
        sig.append(sig_tag)
    return ce, sig


_SIGNAL_OPENING = re.compile(r"<SIG(?:[A-Z]|\d)*>")

Entities = set[tuple[str, int, int]]  # (kind, first word, last word)


def _entities(tags: list[str]) -> Entities:
    return set(get_entities(tags))  # seqeval's lenient reading, as the scorers use


@dataclass(frozen=True)
class RelationTags:
    """One relation: its official tags and entities, and its spans as parsed (pooled figures)."""

    ce: list[str]
    sig: list[str]
    parsed: Entities = field(default_factory=set)
    official: Entities = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "official", _entities(self.ce) | _entities(self.sig))

    @classmethod
    def of(cls, words: list[str], relation: Relation) -> RelationTags:
        """A parsed relation on a sentence's words, tagged as the corpus format writes it."""
        return cls.from_tagged(render_tagged(words, relation), relation)

    @classmethod
    def from_tagged(cls, tagged: str, relation: Relation) -> RelationTags:
        """A tagged text as written (official tags) and its parsed ``relation`` (pooled)."""
        ce, sig = official_tags(tagged)
        return cls(ce, sig, {(s.kind, s.start, s.end - 1) for s in relation.spans})


def _counts(gold: Entities, predicted: Entities) -> np.ndarray:
    """[kind, (tp, fp, fn)] for one gold/predicted pair of entity sets."""
    out = np.zeros((len(KINDS), _COUNTS))
    for i, kind in enumerate(KINDS):
        g = {e for e in gold if e[0] == kind}
        p = {e for e in predicted if e[0] == kind}
        out[i] = len(g & p), len(p - g), len(g - p)
    return out


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _weighted(counts: np.ndarray) -> np.ndarray:
    """[kind, (P·n, R·n, F·n, n)] of pooled counts: what the official scorer averages."""
    out = np.zeros((len(KINDS), _WEIGHTED))
    for i, (tp, fp, fn) in enumerate(counts):
        support = tp + fn
        out[i] = [v * support for v in _prf(tp, fp, fn)] + [support]
    return out


def _overall_f1(weighted: np.ndarray) -> float:
    support = weighted[:, 3].sum()
    return float(weighted[:, 2].sum() / support) if support else 0.0


def _best_pairing(n: int, score) -> list[tuple[int, int]]:
    """(gold, predicted) pairs of the first permutation with the highest ``score`` (strictly
    better replaces, as the official scorers do; ties keep the earlier permutation)."""
    best, best_value = None, -1.0
    for order in itertools.permutations(range(n)):
        pairs = list(zip(order, range(n), strict=True))
        value = score(pairs)
        if value > best_value:
            best, best_value = pairs, value
    assert best is not None
    return best


def _most_true_positives(gold: list[RelationTags], predicted: list[RelationTags]) -> np.ndarray:
    """Pooled counts under the pairing with the most true positives (ours)."""
    table = [[_counts(g.parsed, p.parsed) for p in predicted] for g in gold]
    pairs = _best_pairing(len(gold), lambda ps: sum(table[a][b][:, 0].sum() for a, b in ps))
    return sum((table[a][b] for a, b in pairs), np.zeros((len(KINDS), _COUNTS)))


def tally_sentence(gold: Sequence[RelationTags], predicted: Sequence[RelationTags]) -> np.ndarray:
    """One sentence's additive contribution ``[kind, TALLY_WIDTH]`` (zeros without gold)."""
    tally = np.zeros((len(KINDS), TALLY_WIDTH))
    n = len(gold)
    if n == 0:
        return tally
    empty = RelationTags(["O"] * len(gold[0].ce), ["O"] * len(gold[0].ce))
    preds = [*list(predicted)[:n], *[empty] * max(0, n - len(predicted))]
    gold = list(gold)
    tally[:, POOLED] = _most_true_positives(gold, preds)

    def official(pairs) -> np.ndarray:
        return sum(
            (_counts(gold[a].official, preds[b].official) for a, b in pairs),
            np.zeros((len(KINDS), _COUNTS)),
        )

    def fair(pairs) -> faireval.FairCounts:
        counts = faireval.FairCounts()
        for a, b in pairs:
            counts.add(faireval.compare_bio(gold[a].ce, preds[b].ce))
            counts.add(faireval.compare_bio(gold[a].sig, preds[b].sig))
        return counts

    if n == 1:
        tally[:, OFFICIAL_SINGLE] = official([(0, 0)])
        fair_counts = fair([(0, 0)])
    else:
        pairs = _best_pairing(n, lambda ps: _overall_f1(_weighted(official(ps))))
        tally[:, OFFICIAL_MULTI] = _weighted(official(pairs))
        mode = faireval.HF_DEFAULT_MODE
        fair_pairs = _best_pairing(n, lambda ps: faireval.scores(fair(ps), mode)["overall"]["f1"])
        fair_counts = fair(fair_pairs)
    tally[:, FAIR] = fair_counts.as_array(KINDS)
    return tally


def tally_corpus(
    words: Sequence[list[str]],
    golds: Sequence[Sequence[Relation] | None],
    predictions: Sequence[Sequence[Relation]],
) -> np.ndarray:
    """The summed :func:`tally_sentence` of parsed sentences (``gold`` ``None``/empty: not
    scored)."""
    if not len(words) == len(golds) == len(predictions):
        raise ValueError(
            f"{len(words)} sentences, {len(golds)} golds, {len(predictions)} predictions"
        )
    total = np.zeros((len(KINDS), TALLY_WIDTH))
    for w, gold, predicted in zip(words, golds, predictions, strict=True):
        if gold:
            total += tally_sentence(
                [RelationTags.of(w, g) for g in gold], [RelationTags.of(w, p) for p in predicted]
            )
    return total


def _put(out: dict[str, float], key: str, values: Sequence[float]) -> None:
    for metric, value in zip(("precision", "recall", "f1"), values, strict=True):
        out[key.format(metric=metric)] = float(value)


def summarize(tally: np.ndarray, prefix: str = "span") -> dict[str, float]:
    """Figures of a summed tally: official (``{prefix}_f1`` …), ``_pooled`` and ``_2023``,
    per kind and overall, ``{prefix}_multi_*`` and gold supports."""
    tally = np.asarray(tally, dtype=float)
    out: dict[str, float] = {}
    # official: the pooled single-relation group merged with every multi-relation group
    weighted = _weighted(tally[:, OFFICIAL_SINGLE]) + tally[:, OFFICIAL_MULTI]
    for subset, w in ((prefix, weighted), (f"{prefix}_multi", tally[:, OFFICIAL_MULTI])):
        support = w[:, 3]
        per_kind = np.divide(
            w[:, :3], support[:, None], out=np.zeros((3, 3)), where=support[:, None] > 0
        )
        for i, kind in enumerate(KINDS):
            _put(out, f"{subset}_{KIND_NAMES[kind]}_{{metric}}", per_kind[i])
            out[f"{subset}_{KIND_NAMES[kind]}_support"] = float(support[i])
        total = support.sum()
        overall = (per_kind * support[:, None]).sum(0) / total if total else np.zeros(3)
        _put(out, f"{subset}_{{metric}}", overall)
        out[f"{subset}_support"] = float(total)
    pooled = tally[:, POOLED]
    for i, kind in enumerate(KINDS):
        _put(out, f"{prefix}_{KIND_NAMES[kind]}_{{metric}}_pooled", _prf(*pooled[i]))
    _put(out, f"{prefix}_{{metric}}_pooled", _prf(*pooled.sum(0)))
    fair = faireval.scores(
        faireval.FairCounts.from_array(tally[:, FAIR], KINDS), faireval.HF_DEFAULT_MODE
    )
    for kind in KINDS:
        _put(
            out,
            f"{prefix}_{KIND_NAMES[kind]}_{{metric}}_2023",
            [fair[kind][m] for m in ("precision", "recall", "f1")],
        )
    _put(
        out,
        f"{prefix}_{{metric}}_2023",
        [fair["overall"][m] for m in ("precision", "recall", "f1")],
    )
    return out


def score_corpus(
    words: Sequence[list[str]],
    golds: Sequence[Sequence[Relation] | None],
    predictions: Sequence[Sequence[Relation]],
) -> dict[str, float]:
    """All span figures for a corpus of parsed sentences (``gold`` ``None``/empty: not scored)."""
    return summarize(tally_corpus(words, golds, predictions))
