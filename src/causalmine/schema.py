"""The records every layer shares: sentences, spans, relations and the label vocabularies.

Imported by data, model, metrics, decoding and inference; imports nothing of causalmine.
Words are a sentence split on single spaces, exactly as the CNC scorer splits it; spans are
word-level ``[start, end)``. Two BIO layers per relation, because a signal may overlap a cause
or an effect: Cause/Effect ``O B-C I-C B-E I-E`` and Signal ``O B-S I-S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from torch import Tensor

CE_LABELS: tuple[str, ...] = ("O", "B-C", "I-C", "B-E", "I-E")
SIG_LABELS: tuple[str, ...] = ("O", "B-S", "I-S")
CE_LABEL_TO_ID = {label: i for i, label in enumerate(CE_LABELS)}
SIG_LABEL_TO_ID = {label: i for i, label in enumerate(SIG_LABELS)}
# The candidate-pair markers of the pair task; tokenizers get them as added special tokens.
PAIR_MARKERS: tuple[str, ...] = ("<ARG0>", "</ARG0>", "<ARG1>", "</ARG1>")
# label id of a position that no loss or metric reads (PyTorch's cross-entropy default)
IGNORE_INDEX = -100


class TagTransitions(NamedTuple):
    """Learned tag-transition scores of one BIO layer (a linear-chain CRF per span head, with
    ``model.span_crf``): ``start [K, labels]`` for the first word, ``step [K, labels, labels]``
    for label i followed by label j, ``end [K, labels]`` for the last word."""

    start: Tensor
    step: Tensor
    end: Tensor


def split_words(text: str) -> list[str]:
    """Words as the corpora and the CNC scorer see them: split on single spaces."""
    return text.split(" ")


def spans_to_bio(spans: list[Span], n_words: int) -> list[str]:
    tags = ["O"] * n_words
    for s in spans:
        tags[s.start] = f"B-{s.kind}"
        for i in range(s.start + 1, s.end):
            tags[i] = f"I-{s.kind}"
    return tags


@dataclass(frozen=True, order=True)
class Span:
    """A word span ``[start, end)`` of one kind: ``C`` cause, ``E`` effect, ``S`` signal.

    ``tag`` and the ranks remember how a parsed text wrote the span (``SIG1``, the order of
    tags that meet at one word) so rendering gives back the original string; they take no
    part in equality, so scoring compares boundaries and kinds only.
    """

    start: int
    end: int
    kind: str
    tag: str | None = field(default=None, compare=False)
    open_rank: int | None = field(default=None, compare=False)
    close_rank: int | None = field(default=None, compare=False)

    def words(self, words: list[str]) -> str:
        return " ".join(words[self.start : self.end])


@dataclass(frozen=True)
class Relation:
    """One cause–effect relation of a sentence, as word spans (signals optional)."""

    spans: tuple[Span, ...]

    def of_kind(self, kind: str) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.kind == kind)

    @property
    def causes(self) -> tuple[Span, ...]:
        return self.of_kind("C")

    @property
    def effects(self) -> tuple[Span, ...]:
        return self.of_kind("E")

    @property
    def signals(self) -> tuple[Span, ...]:
        return self.of_kind("S")

    @property
    def first_word(self) -> int:
        return min((s.start for s in self.spans), default=0)

    def sort_key(self) -> tuple:
        """Deterministic order of relations: first tagged word, then the spans themselves."""
        return (self.first_word, tuple(sorted((s.start, s.end, s.kind) for s in self.spans)))

    def ce_tags(self, n_words: int) -> list[str]:
        return spans_to_bio([s for s in self.spans if s.kind in "CE"], n_words)

    def sig_tags(self, n_words: int) -> list[str]:
        return spans_to_bio(list(self.signals), n_words)

    @classmethod
    def from_spans(cls, spans: list[Span] | tuple[Span, ...]) -> Relation:
        return cls(tuple(sorted(spans)))


@dataclass
class Example:
    """One sentence with whatever gold labels its corpus has (``None`` = no label for a task)."""

    id: str
    text: str
    doc_id: str
    corpus: str = "cnc"
    seq_label: int | None = None
    relations: list[Relation] | None = None  # sorted by position; [] = annotated, no relation
    pair_label: int | None = None
    source: str = ""  # "file, row N" for messages
    # "sentence": text is a plain sentence (sequence and span labels); "pair": text is a
    # sentence with one candidate pair marked by <ARG0>…</ARG0> <ARG1>…</ARG1> (pair label)
    task: str = "sentence"
    words: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.words = split_words(self.text)

    @property
    def has_spans(self) -> bool:
        return self.relations is not None
