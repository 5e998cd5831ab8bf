"""Row accounting: every row read is either used or rejected for a named reason; and the
set-up statistics of each split (:func:`split_statistics`, :func:`setup_summary`).

Readers share one :class:`ReadReport` per file. In ``raise`` mode the first bad row stops
everything with an error naming the file, the row (1-based, as a spreadsheet numbers it: the
header is row 1) and the problem; in ``skip`` mode it is counted under its reason and the
summary is printed at set-up.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from causalmine.data.encoding import EncodedExample
from causalmine.schema import Example

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]  # data.on_error, checked in causalmine.settings


class DataError(ValueError):
    """Bad input data; the message names the file, the row and what is wrong."""


@dataclass
class ReadReport:
    """What a reader did with the rows of one file."""

    file: str
    on_error: OnError = "raise"
    rows_read: int = 0
    rows_used: int = 0
    rejected: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)  # kept rows with something worth knowing
    first_examples: dict[str, str] = field(default_factory=dict)

    def reject(self, row: int, reason: str, detail: str) -> None:
        """Reject a row: raise in ``raise`` mode, count it in ``skip`` mode."""
        message = f"{self.file}, row {row}: {reason}: {detail}"
        if self.on_error == "raise":
            raise DataError(message + "  (set data.on_error=skip to skip such rows and count them)")
        self.rejected[reason] += 1
        self.first_examples.setdefault(reason, message)

    def drop(self, reason: str) -> None:
        """Count a row that the format's own rules leave out (never an error, never raises)."""
        self.rejected[reason] += 1

    def note(self, reason: str, row: int | None = None, detail: str = "") -> None:
        self.notes[reason] += 1
        if row is not None:
            self.first_examples.setdefault(reason, f"{self.file}, row {row}: {detail}")

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def check_balance(self) -> None:
        if self.rows_read != self.rows_used + self.rows_rejected:
            raise AssertionError(
                f"{self.file}: rows read {self.rows_read} != used {self.rows_used} + rejected {self.rows_rejected}"
            )

    def summary(self) -> str:
        parts = [
            f"{self.file}: read {self.rows_read}, used {self.rows_used}, rejected {self.rows_rejected}"
        ]
        parts += [f"  rejected ({reason}): {n}" for reason, n in sorted(self.rejected.items())]
        parts += [f"  note ({reason}): {n}" for reason, n in sorted(self.notes.items())]
        parts += [f"  e.g. {example}" for example in self.first_examples.values()]
        return "\n".join(parts)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "rows_used": self.rows_used,
            "rows_rejected": self.rows_rejected,
            "rejected": dict(self.rejected),
            "notes": dict(self.notes),
        }


SPLITS = ("train", "val", "test")


def split_statistics(
    examples: list[Example], items: list[EncodedExample], span_heads: int
) -> dict[str, Any]:
    """What one split holds after encoding: examples per corpus and task, relations (and those
    beyond the ``span_heads`` a model trains on), truncation, documents."""
    sentences = [e for e in examples if e.task == "sentence"]
    relation_counts = Counter(len(e.relations) for e in sentences if e.relations is not None)
    return {
        "examples": len(items),
        "by_corpus": dict(Counter(e.corpus for e in examples)),
        "sentences": len(sentences),
        "with_sequence_label": sum(1 for e in sentences if e.seq_label is not None),
        "with_spans": sum(1 for e in sentences if e.relations is not None),
        "relations": sum(k * n for k, n in relation_counts.items()),
        "pairs": sum(1 for e in examples if e.task == "pair"),
        "sentences_over_span_heads": sum(n for k, n in relation_counts.items() if k > span_heads),
        # only training loses them: evaluation scores against every gold relation
        "relations_beyond_span_heads": sum(
            (k - span_heads) * n for k, n in relation_counts.items() if k > span_heads
        ),
        "truncated_examples": sum(1 for item in items if item.num_truncated_words),
        "spans_cut_by_truncation": sum(item.spans_cut_by_truncation(span_heads) for item in items),
        "documents": len({(e.corpus, e.doc_id) for e in examples}),
    }


def setup_summary(
    reports: list[ReadReport], stats: dict[str, Any], span_heads: int, drop_leaked: bool
) -> str:
    """The set-up report: every file's rows, every split's statistics, what was left out."""
    lines = [report.summary() for report in reports]
    for split in SPLITS:
        if split in stats:
            lines.append(f"{split}: " + ", ".join(f"{k}={v}" for k, v in stats[split].items()))
    train = stats.get("train", {})
    if train.get("relations_beyond_span_heads"):
        lines.append(
            f"  {train['sentences_over_span_heads']} training sentences have more than "
            f"{span_heads} relations; {train['relations_beyond_span_heads']} relations are left "
            "out of training (never out of evaluation)"
        )
    for corpus, how in stats.get("validation_split", {}).items():
        lines.append(f"  validation split of {corpus}: {how}")
    leakage = stats.get("leakage", {})
    if leakage.get("train") or leakage.get("val"):
        action = (
            "dropped from training and validation"
            if drop_leaked
            else "kept (data.drop_leaked=true drops them)"
        )
        lines.append(
            f"  leakage: {leakage['train']} training and {leakage['val']} validation sentences "
            f"also occur in the test data; {action}"
        )
    return "\n".join(lines)
