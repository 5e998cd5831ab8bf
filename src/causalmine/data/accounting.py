"""Row accounting: every row read is either used or rejected for a named reason.

Readers share one :class:`ReadReport` per file. In ``raise`` mode the first bad row stops
everything with an error naming the file, the row (1-based, as a spreadsheet numbers it: the
header is row 1) and the problem; in ``skip`` mode it is counted under its reason and the
summary is printed at set-up.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

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
