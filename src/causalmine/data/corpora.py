"""Corpus layouts: which files make up a corpus's train and test splits, read into examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from causalmine.data.accounting import OnError, ReadReport
from causalmine.data.formats import Example, join_by_sentence, read_grouped_file, read_sequence_file
from causalmine.data.sources import ensure_file


@dataclass
class CorpusSplits:
    """Examples of one corpus; ``test`` is the held-out split used for final numbers."""

    name: str
    train: list[Example]
    test: list[Example]
    reports: list[ReadReport] = field(default_factory=list)


CNC_FILES = {
    "train": ("cnc_v2/train_subtask1.csv", "cnc_v2/train_subtask2_grouped.csv"),
    # CNC's dev split has public labels; the shared task's test labels are private.
    "test": ("cnc_v2/dev_subtask1.csv", "cnc_v2/dev_subtask2_grouped.csv"),
}


def cnc_files(root: str | Path, download: bool = True) -> dict[str, tuple[Path, Path]]:
    """Resolve (and fetch if missing) the CNC V2 files."""
    return {split: tuple(ensure_file(root, rel, download) for rel in rels) for split, rels in CNC_FILES.items()}  # type: ignore[misc]


def load_cnc(root: str | Path, on_error: OnError = "raise", download: bool = True) -> CorpusSplits:
    """CNC V2: subtask 1 and subtask 2 grouped, joined by sentence; dev is the test split."""
    files = cnc_files(root, download)
    reports: list[ReadReport] = []
    splits: dict[str, list[Example]] = {}
    for split, (sequence_path, grouped_path) in files.items():
        sequence, seq_report = read_sequence_file(sequence_path, "cnc", on_error)
        spans, span_report = read_grouped_file(grouped_path, "cnc", on_error)
        splits[split] = join_by_sentence(sequence, spans, span_report)
        reports += [seq_report, span_report]
    return CorpusSplits("cnc", splits["train"], splits["test"], reports)
