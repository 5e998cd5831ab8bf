"""Corpus layouts: which files make up a corpus's splits, read into examples.

- ``cnc``: CNC V2 in its authors' layout under ``<root>/cnc_v2/``; dev is the test split.
- UniCausal corpora (``because``, ``altlex``, ``ctb``, ``esl2``, ``pdtb``, ``semeval2010t8``…)
  in UniCausal's layout under their folder: ``splits/<corpus>_{train,test}.csv`` (one row per
  candidate pair: sequence and pair examples) and ``grouped/splits/<corpus>_{train,test}.csv``
  (one row per sentence: span examples) for the corpora that have spans.
- a user's CSV files (``data=csv``).

Each corpus a run reads is a source object (:class:`CNCSource`, :class:`UniCausalSource`,
:class:`CSVSource`) with a ``name``, ``fetch()`` (download what is missing, once per node) and
``load()`` (its splits); :func:`sources_of` turns a data config into the list of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from causalmine.data.accounting import OnError, ReadReport
from causalmine.data.formats import (
    join_by_sentence,
    read_grouped_file,
    read_pair_file,
    read_sequence_file,
    read_user_csv,
)
from causalmine.data.sources import ensure_file
from causalmine.schema import Example
from causalmine.settings import DataConfig

# UniCausal publishes span annotations (grouped files) for these corpora only
SPAN_CORPORA = frozenset({"altlex", "because", "pdtb"})


@dataclass
class CorpusSplits:
    """Examples of one corpus; ``test`` is the held-out split used for final numbers, ``val``
    is given only when the corpus has its own validation split (else it is carved from train)."""

    name: str
    train: list[Example]
    test: list[Example]
    val: list[Example] | None = None
    reports: list[ReadReport] = field(default_factory=list)


CNC_FILES = {
    "train": (
        "cnc_v2/train_subtask1.csv",
        "cnc_v2/train_subtask2_grouped.csv",
        "cnc_v2/train_subtask2.csv",
    ),
    # CNC's dev split has public labels; the shared task's test labels are private.
    "test": (
        "cnc_v2/dev_subtask1.csv",
        "cnc_v2/dev_subtask2_grouped.csv",
        "cnc_v2/dev_subtask2.csv",
    ),
}


def cnc_files(
    root: str | Path, download: bool = True, pairs: bool = False
) -> dict[str, list[Path]]:
    """Resolve (and fetch if missing) the CNC V2 files of each split."""
    count = 3 if pairs else 2
    return {
        split: [ensure_file(root, rel, download) for rel in rels[:count]]
        for split, rels in CNC_FILES.items()
    }


def load_cnc(
    root: str | Path, on_error: OnError = "raise", download: bool = True, pairs: bool = False
) -> CorpusSplits:
    """CNC V2: subtask 1 and subtask 2 grouped joined by sentence; with ``pairs``, the subtask 2
    rows as pair examples too (CNC has causal pairs only)."""
    reports: list[ReadReport] = []
    splits: dict[str, list[Example]] = {}
    for split, paths in cnc_files(root, download, pairs).items():
        sequence, seq_report = read_sequence_file(paths[0], "cnc", on_error)
        spans, span_report = read_grouped_file(paths[1], "cnc", on_error)
        splits[split] = join_by_sentence(sequence, spans, span_report)
        reports += [seq_report, span_report]
        if pairs:
            _, pair_examples, pair_report = read_pair_file(paths[2], "cnc", on_error)
            splits[split] += pair_examples
            reports.append(pair_report)
    return CorpusSplits("cnc", splits["train"], splits["test"], reports=reports)


def unicausal_paths(corpus: str, split: str) -> tuple[str, str | None]:
    """Relative paths of a UniCausal corpus's pair file and (if it has spans) grouped file."""
    grouped = f"grouped/splits/{corpus}_{split}.csv" if corpus in SPAN_CORPORA else None
    return f"splits/{corpus}_{split}.csv", grouped


def load_unicausal(
    root: str | Path, corpus: str, on_error: OnError = "raise", download: bool = True
) -> CorpusSplits:
    """One UniCausal-format corpus: sequence (deduplicated by sentence, eg_id 0), pair and span
    examples; a corpus without span files simply has no span task."""
    reports: list[ReadReport] = []
    splits: dict[str, list[Example]] = {}
    for split in ("train", "test"):
        pair_path, grouped_path = unicausal_paths(corpus, split)
        sequence, pairs, pair_report = read_pair_file(
            ensure_file(root, pair_path, download, family="unicausal"), corpus, on_error
        )
        reports.append(pair_report)
        if grouped_path is not None:
            spans, span_report = read_grouped_file(
                ensure_file(root, grouped_path, download, family="unicausal"), corpus, on_error
            )
            sentences = join_by_sentence(sequence, spans, span_report)
            reports.append(span_report)
        else:
            sentences = sequence
        splits[split] = sentences + pairs
    return CorpusSplits(corpus, splits["train"], splits["test"], reports=reports)


def load_csv(
    name: str,
    train_file: str,
    test_file: str | None,
    val_file: str | None,
    columns: dict[str, str | None],
    on_error: OnError = "raise",
) -> CorpusSplits:
    """A user's corpus in CSV files (see :func:`~causalmine.data.formats.read_user_csv`)."""
    reports: list[ReadReport] = []

    def read(path: str | None) -> list[Example] | None:
        if not path:
            return None
        examples, report = read_user_csv(Path(path).expanduser(), name, columns, on_error)
        reports.append(report)
        return examples

    train = read(train_file) or []
    return CorpusSplits(name, train, read(test_file) or [], val=read(val_file), reports=reports)


# ---- data sources: what the datamodule reads, one object per corpus


@dataclass
class CNCSource:
    """CNC V2 under ``root`` (``cnc_v2/``); with ``pairs``, subtask 2's pair rows too."""

    root: str | Path
    on_error: OnError = "raise"
    download: bool = True
    pairs: bool = False
    name: str = "cnc"

    def fetch(self) -> None:
        cnc_files(self.root, self.download, self.pairs)

    def load(self) -> CorpusSplits:
        return load_cnc(self.root, self.on_error, self.download, self.pairs)


@dataclass
class UniCausalSource:
    """One UniCausal-format corpus (``because``, ``altlex``…) under ``root``."""

    root: str | Path
    name: str
    on_error: OnError = "raise"
    download: bool = True

    def fetch(self) -> None:
        for split in ("train", "test"):
            for path in unicausal_paths(self.name, split):
                if path is not None:
                    ensure_file(self.root, path, self.download, family="unicausal")

    def load(self) -> CorpusSplits:
        return load_unicausal(self.root, self.name, self.on_error, self.download)


@dataclass
class CSVSource:
    """A user's corpus in CSV files (``data=csv``); nothing to fetch."""

    name: str
    train_file: str
    test_file: str | None = None
    val_file: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    on_error: OnError = "raise"

    def fetch(self) -> None:
        """Local files: nothing to fetch (a missing one is reported when it is read)."""

    def load(self) -> CorpusSplits:
        return load_csv(
            self.name, self.train_file, self.test_file, self.val_file, self.columns, self.on_error
        )


DataSource = CNCSource | UniCausalSource | CSVSource


def sources_of(config: DataConfig) -> list[DataSource]:
    """The corpora a data config names, in order (``data.kind`` picks the layout)."""
    if config.kind == "cnc":
        return [CNCSource(config.root, config.on_error, config.download, config.pairs)]
    if config.kind == "csv":
        return [
            CSVSource(
                config.name,
                config.train_file or "",
                config.test_file,
                config.val_file,
                dict(config.columns or {}),
                config.on_error,  # type: ignore[arg-type]
            )
        ]
    return [
        # CNC read as one of UniCausal's corpora: its own layout; its pairs only with data.pairs,
        # as under data=cnc (every CNC pair is causal: they would teach the pair head one answer)
        CNCSource(config.cnc_root or config.root, config.on_error, config.download, config.pairs)  # type: ignore[arg-type]
        if corpus == "cnc"
        else UniCausalSource(config.root, corpus, config.on_error, config.download)  # type: ignore[arg-type]
        for corpus in config.corpora or []
    ]
