"""Corpus readers: CSV rows → :class:`Example` objects, with every row accounted for.

CNC V2 ships two views of the same sentences: subtask 1 (``index,text,label``) and subtask 2
grouped (one row per sentence, ``causal_text_w_pairs`` a Python-literal list of tagged texts).
:func:`read_cnc_split` joins them by sentence so one example carries both labels.
"""

from __future__ import annotations

import ast
import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from causalmine.data.accounting import DataError, OnError, ReadReport
from causalmine.data.tags import Relation, TagError, parse_tagged, split_words


@dataclass
class Example:
    """One sentence with whatever gold labels its corpus has (``None`` = no label for a task)."""

    id: str
    text: str
    doc_id: str
    corpus: str = "cnc"
    seq_label: int | None = None
    relations: list[Relation] | None = None  # sorted by position; [] = annotated, no relation
    pair_label: int | None = None  # for a text with one candidate pair marked by <ARG0>/<ARG1>
    source: str = ""  # "file, row N" for messages
    words: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.words = split_words(self.text)

    @property
    def has_spans(self) -> bool:
        return self.relations is not None


@dataclass
class CsvRow:
    number: int  # 1-based, the header is row 1
    values: dict[str, str]


def iter_csv(path: Path, required: list[str], report: ReadReport) -> Iterator[CsvRow]:
    """Yield the rows of a UTF-8 (optionally BOM-prefixed) CSV file with named columns."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, row {line}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {header}")
    next_row = 2
    for values in reader:
        report.rows_read += 1
        yield CsvRow(next_row, {k: (v if v is not None else "") for k, v in values.items() if k is not None})
        next_row = reader.line_num + 1


def parse_binary_label(value: str) -> int | None:
    """'1'/'0' (also '1.0') → int; anything else → None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or number not in (0.0, 1.0):
        return None
    return int(number)


def parse_relation_list(cell: str) -> list[str]:
    """The ``causal_text_w_pairs`` cell: a Python-literal list of strings; empty cell = []."""
    if not cell.strip():
        return []
    value = ast.literal_eval(cell)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    return value


def parse_relations(texts: list[str], sentence: str, report: ReadReport, row: int) -> list[Relation]:
    """Parse the tagged texts of one sentence into relations sorted by position."""
    relations = []
    for tagged in texts:
        parsed = parse_tagged(tagged, sentence)  # TagError propagates to the caller
        if parsed.tags_inside_words:
            report.note("tag inside a word (span widened to the whole word)", row, tagged[:120])
        relations.append(parsed.relation)
    return sorted(relations, key=Relation.sort_key)


def _text_or_reject(row: CsvRow, report: ReadReport) -> str | None:
    text = row.values.get("text", "")
    if not text.strip():
        report.reject(row.number, "empty text", "the text cell is empty or whitespace")
        return None
    return text


def read_sequence_file(path: Path, corpus: str, on_error: OnError, labelled: bool = True) -> tuple[list[Example], ReadReport]:
    """CNC subtask 1 style: ``index,text[,label]`` → examples with a sequence label."""
    report = ReadReport(str(path), on_error)
    examples: list[Example] = []
    seen: set[str] = set()
    for row in iter_csv(path, ["index", "text", "label"] if labelled else ["index", "text"], report):
        index = row.values["index"].strip()
        text = _text_or_reject(row, report)
        if text is None:
            continue
        if index in seen:
            report.reject(row.number, "duplicate index", f"index {index!r} appears earlier in the file")
            continue
        label = None
        if labelled:
            label = parse_binary_label(row.values["label"])
            if label is None:
                report.reject(row.number, "bad label", f"label {row.values['label']!r} is not 0 or 1")
                continue
        seen.add(index)
        doc_id = index.rsplit("_", 1)[0] if "_" in index else index
        examples.append(Example(id=index, text=text, doc_id=doc_id, corpus=corpus, seq_label=label, source=f"{path}, row {row.number}"))
        report.rows_used += 1
    report.check_balance()
    return examples, report


GROUPED_COLUMNS = ["doc_id", "sent_id", "text", "causal_text_w_pairs"]


def read_grouped_file(path: Path, corpus: str, on_error: OnError) -> tuple[list[Example], ReadReport]:
    """Grouped span file (CNC ``*_subtask2_grouped.csv``, UniCausal ``grouped/``): one row per sentence."""
    report = ReadReport(str(path), on_error)
    examples: list[Example] = []
    seen: set[str] = set()
    for row in iter_csv(path, GROUPED_COLUMNS, report):
        v = row.values
        text = _text_or_reject(row, report)
        if text is None:
            continue
        sentence_id = f"{v['doc_id']}_{v['sent_id']}"
        if sentence_id in seen:
            report.reject(row.number, "duplicate index", f"sentence {sentence_id!r} appears earlier in the file")
            continue
        try:
            tagged = parse_relation_list(v["causal_text_w_pairs"])
        except (ValueError, SyntaxError) as err:
            report.reject(row.number, "bad relation list", f"causal_text_w_pairs is not a Python list literal of strings ({err})")
            continue
        try:
            relations = parse_relations(tagged, text, report, row.number)
        except TagError as err:
            report.reject(row.number, err.reason, str(err))
            continue
        num_rs = v.get("num_rs", "").strip()
        if num_rs and num_rs not in (str(len(relations)), f"{len(relations)}.0"):
            report.note("num_rs differs from the relation list (list used)", row.number, f"num_rs={num_rs}, list has {len(relations)}")
        seen.add(sentence_id)
        examples.append(
            Example(id=sentence_id, text=text, doc_id=v["doc_id"], corpus=corpus, relations=relations, source=f"{path}, row {row.number}")
        )
        report.rows_used += 1
    report.check_balance()
    return examples, report


def join_by_sentence(sequence: list[Example], spans: list[Example], report: ReadReport) -> list[Example]:
    """Merge the sequence-label and span views of the same sentences (keyed by sentence id).

    A sentence in only one view keeps only that view's labels. Disagreements between the views
    (different text; causal label 0 with relations) are noted, not hidden.
    """
    by_id = {e.id: e for e in sequence}
    merged: list[Example] = list(sequence)
    for span_example in spans:
        target = by_id.get(span_example.id)
        if target is None:
            merged.append(span_example)
            report.note("sentence only in the span file")
            continue
        if target.text != span_example.text:
            report.note("text differs between the two files (sequence file's text kept, spans dropped)", None)
            continue
        target.relations = span_example.relations
        if target.seq_label == 0 and span_example.relations:
            report.note("label 0 but relations present")
    only_sequence = sum(1 for e in sequence if e.relations is None)
    if only_sequence:
        report.notes["sentence only in the sequence file"] += only_sequence
    return merged
