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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from causalmine.data.accounting import DataError, OnError, ReadReport
from causalmine.data.tags import TagError, pair_input, parse_tagged, strip_tags
from causalmine.schema import Example, Relation


@dataclass
class CsvRow:
    number: int  # 1-based, the header is row 1
    values: dict[str, str]


def iter_csv(path: Path, required: list[str], report: ReadReport) -> Iterator[CsvRow]:
    """Yield the rows of a UTF-8 (optionally BOM-prefixed) CSV file with named columns.

    Bytes that are not UTF-8 reject their own row (named by number), not the whole file.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    content = path.read_bytes().decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the header has {header}")
    next_row = 2
    for values in reader:
        report.rows_read += 1
        row = CsvRow(
            next_row, {k: (v if v is not None else "") for k, v in values.items() if k is not None}
        )
        next_row = reader.line_num + 1
        if any(_NOT_UTF8.search(v) for v in row.values.values()):
            report.reject(row.number, "not valid UTF-8", "the row holds bytes that are not UTF-8")
            continue
        yield row


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # where surrogateescape put undecodable bytes


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


def parse_relations(
    texts: list[str], sentence: str, report: ReadReport, row: int
) -> list[Relation]:
    """Parse the tagged texts of one sentence into relations sorted by position."""
    relations = []
    for tagged in texts:
        parsed = parse_tagged(tagged, sentence)  # TagError propagates to the caller
        if parsed.tags_inside_words:
            report.note("tag inside a word (span widened to the whole word)", row, tagged[:120])
        relations.append(parsed.relation)
    return sorted(relations, key=Relation.sort_key)


def _relations_of_cell(
    cell: str, column: str, text: str, report: ReadReport, row: int, single_allowed: bool = False
) -> list[Relation] | None:
    """The relations of a relation-list cell, or None when the row is rejected (skip mode)."""
    try:
        single = single_allowed and cell.strip() and not cell.strip().startswith("[")
        tagged = [cell] if single else parse_relation_list(cell)
    except (ValueError, SyntaxError) as err:
        report.reject(
            row, "bad relation list", f"{column} is not a Python list literal of strings ({err})"
        )
        return None
    try:
        return parse_relations(tagged, text, report, row)
    except TagError as err:
        report.reject(row, err.reason, str(err))
        return None


def _text_or_reject(row: CsvRow, report: ReadReport) -> str | None:
    text = row.values.get("text", "")
    if not text.strip():
        report.reject(row.number, "empty text", "the text cell is empty or whitespace")
        return None
    return text


def read_sequence_file(
    path: Path, corpus: str, on_error: OnError, labelled: bool = True
) -> tuple[list[Example], ReadReport]:
    """CNC subtask 1 style: ``index,text[,label]`` → examples with a sequence label."""
    report = ReadReport(str(path), on_error)
    examples: list[Example] = []
    seen: set[str] = set()
    for row in iter_csv(
        path, ["index", "text", "label"] if labelled else ["index", "text"], report
    ):
        index = row.values["index"].strip()
        text = _text_or_reject(row, report)
        if text is None:
            continue
        if index in seen:
            report.reject(
                row.number, "duplicate index", f"index {index!r} appears earlier in the file"
            )
            continue
        label = None
        if labelled:
            label = parse_binary_label(row.values["label"])
            if label is None:
                report.reject(
                    row.number, "bad label", f"label {row.values['label']!r} is not 0 or 1"
                )
                continue
        seen.add(index)
        doc_id = index.rsplit("_", 1)[0] if "_" in index else index
        examples.append(
            Example(
                id=index,
                text=text,
                doc_id=doc_id,
                corpus=corpus,
                seq_label=label,
                source=f"{path}, row {row.number}",
            )
        )
        report.rows_used += 1
    report.check_balance()
    return examples, report


GROUPED_COLUMNS = ["doc_id", "sent_id", "text", "causal_text_w_pairs"]
PAIR_COLUMNS = ["doc_id", "sent_id", "eg_id", "text", "text_w_pairs", "seq_label", "pair_label"]


def _eg_id(row: CsvRow) -> int:
    value = row.values.get("eg_id", "").strip()
    return int(float(value)) if value else 0


def _main_rows(rows: list[CsvRow]) -> set[int]:
    """UniCausal's rule for one sequence example per sentence: the row with the lowest ``eg_id``.

    Returns the row numbers of those rows (the other rows still feed the pair task)."""
    best: dict[str, CsvRow] = {}
    for row in rows:
        sentence_id = f"{row.values['doc_id']}_{row.values['sent_id']}"
        if sentence_id not in best or _eg_id(row) < _eg_id(best[sentence_id]):
            best[sentence_id] = row
    return {row.number for row in best.values()}


def read_grouped_file(
    path: Path, corpus: str, on_error: OnError
) -> tuple[list[Example], ReadReport]:
    """Grouped span file (CNC ``*_subtask2_grouped.csv``, UniCausal ``grouped/``): one example per sentence.

    UniCausal's grouped files may hold several rows for one sentence (one per candidate pair,
    e.g. a non-causal ``eg_id`` 0 row and a causal ``eg_id`` 1 row with the relations). As
    UniCausal's own loader uses every causal row, the sentence gets the relations of all its
    rows; a relation repeated in two rows is kept once (noted).
    """
    report = ReadReport(str(path), on_error)
    by_sentence: dict[str, Example] = {}
    for row in iter_csv(path, GROUPED_COLUMNS, report):
        v = row.values
        text = _text_or_reject(row, report)
        if text is None:
            continue
        relations = _relations_of_cell(
            v["causal_text_w_pairs"], "causal_text_w_pairs", text, report, row.number
        )
        if relations is None:
            continue
        num_rs = v.get("num_rs", "").strip()
        if num_rs and num_rs not in (str(len(relations)), f"{len(relations)}.0"):
            report.note(
                "num_rs differs from the relation list (list used)",
                row.number,
                f"num_rs={num_rs}, list has {len(relations)}",
            )
        sentence_id = f"{v['doc_id']}_{v['sent_id']}"
        example = by_sentence.get(sentence_id)
        if example is None:
            by_sentence[sentence_id] = Example(
                id=sentence_id,
                text=text,
                doc_id=v["doc_id"],
                corpus=corpus,
                relations=relations,
                source=f"{path}, row {row.number}",
            )
        elif example.text != text:
            report.reject(
                row.number,
                "sentence text differs",
                f"{sentence_id} has another text in {example.source}",
            )
            continue
        else:
            report.note("several rows of one sentence (relations merged)", row.number, sentence_id)
            known = set(example.relations or [])
            for relation in relations:
                if relation in known:
                    report.note(
                        "relation repeated in another row of the sentence (kept once)",
                        row.number,
                        sentence_id,
                    )
                else:
                    known.add(relation)
            example.relations = sorted(known, key=Relation.sort_key)
        report.rows_used += 1
    report.check_balance()
    return list(by_sentence.values()), report


def read_pair_file(
    path: Path, corpus: str, on_error: OnError
) -> tuple[list[Example], list[Example], ReadReport]:
    """UniCausal ungrouped file (and CNC ``*_subtask2.csv``): one row per candidate pair.

    Returns the sequence examples (one per sentence, UniCausal's rule: its ``eg_id`` 0 row) and
    the pair examples (every row: its marked text and ``pair_label``).
    """
    report = ReadReport(str(path), on_error)
    rows = list(iter_csv(path, PAIR_COLUMNS, report))
    main = _main_rows(rows)
    sentences: list[Example] = []
    pairs: list[Example] = []
    for row in rows:
        v = row.values
        text = _text_or_reject(row, report)
        if text is None:
            continue
        seq_label, pair_label = (
            parse_binary_label(v["seq_label"]),
            parse_binary_label(v["pair_label"]),
        )
        if seq_label is None or pair_label is None:
            bad = "seq_label" if seq_label is None else "pair_label"
            report.reject(row.number, "bad label", f"{bad} {v[bad]!r} is not 0 or 1")
            continue
        try:
            marked = pair_input(v["text_w_pairs"])
        except TagError as err:
            report.reject(row.number, err.reason, str(err))
            continue
        untagged = strip_tags(v["text_w_pairs"])
        if untagged.split() != text.split():
            report.reject(
                row.number,
                "words differ from text",
                "text_w_pairs without its tags differs from text",
            )
            continue
        if untagged != text:
            report.note(
                "text_w_pairs differs from text in whitespace only",
                row.number,
                repr(untagged[-40:]),
            )
        sentence_id, eg_id = f"{v['doc_id']}_{v['sent_id']}", _eg_id(row)
        source = f"{path}, row {row.number}"
        if row.number in main:
            sentences.append(
                Example(
                    id=sentence_id,
                    text=text,
                    doc_id=v["doc_id"],
                    corpus=corpus,
                    seq_label=seq_label,
                    source=source,
                )
            )
        pairs.append(
            Example(
                id=f"{sentence_id}#{eg_id}",
                text=marked,
                doc_id=v["doc_id"],
                corpus=corpus,
                pair_label=pair_label,
                source=source,
                task="pair",
            )
        )
        report.rows_used += 1
    report.check_balance()
    return sentences, pairs, report


USER_COLUMNS = ("id", "doc_id", "text", "seq_label", "relations", "pair_text", "pair_label")


def _user_label(row: CsvRow, column: str | None, report: ReadReport) -> tuple[bool, int | None]:
    """(ok, label): an empty cell is "no label"; anything but 0/1 rejects the row."""
    if not column or not row.values[column].strip():
        return True, None
    label = parse_binary_label(row.values[column])
    if label is None:
        report.reject(row.number, "bad label", f"{column} {row.values[column]!r} is not 0 or 1")
        return False, None
    return True, label


def read_user_csv(
    path: Path, corpus: str, columns: dict[str, str | None], on_error: OnError
) -> tuple[list[Example], ReadReport]:
    """A user's corpus: one row per sentence, columns named by ``columns`` (``None`` = absent).

    ``relations`` holds the sentence's tagged texts (a Python-literal list, or one tagged text;
    an empty cell means no relation); ``pair_text`` a copy of the sentence with one candidate
    pair marked, labelled by ``pair_label``. Returns sentence and pair examples together.
    """
    unknown = set(columns) - set(USER_COLUMNS)
    if unknown:
        raise DataError(
            f"data.columns: unknown key(s) {sorted(unknown)}; known: {list(USER_COLUMNS)}"
        )
    if not columns.get("text"):
        raise DataError("data.columns.text must name the text column")
    col = {k: columns.get(k) for k in USER_COLUMNS}
    report = ReadReport(str(path), on_error)
    examples: list[Example] = []
    seen: set[str] = set()
    for row in iter_csv(path, [c for c in col.values() if c], report):
        v = row.values
        text = v[col["text"]]
        if not text.strip():
            report.reject(row.number, "empty text", f"{col['text']} is empty or whitespace")
            continue
        example_id = v[col["id"]].strip() if col["id"] else f"row{row.number}"
        if example_id in seen:
            report.reject(
                row.number,
                "duplicate index",
                f"{col['id']} {example_id!r} appears earlier in the file",
            )
            continue
        ok_seq, seq_label = _user_label(row, col["seq_label"], report)
        if not ok_seq:
            continue
        relations = None
        if col["relations"]:
            relations = _relations_of_cell(
                v[col["relations"]], col["relations"], text, report, row.number, single_allowed=True
            )
            if relations is None:
                continue
        pair = None
        if col["pair_text"] and v[col["pair_text"]].strip():
            ok_pair, pair_label = _user_label(row, col["pair_label"], report)
            if not ok_pair:
                continue
            try:
                pair = (pair_input(v[col["pair_text"]]), pair_label)
            except TagError as err:
                report.reject(row.number, err.reason, str(err))
                continue
        doc_id = v[col["doc_id"]].strip() if col["doc_id"] else example_id
        source = f"{path}, row {row.number}"
        seen.add(example_id)
        examples.append(
            Example(
                id=example_id,
                text=text,
                doc_id=doc_id,
                corpus=corpus,
                seq_label=seq_label,
                relations=relations,
                source=source,
            )
        )
        if pair is not None:
            examples.append(
                Example(
                    id=f"{example_id}#pair",
                    text=pair[0],
                    doc_id=doc_id,
                    corpus=corpus,
                    pair_label=pair[1],
                    source=source,
                    task="pair",
                )
            )
        report.rows_used += 1
    report.check_balance()
    return examples, report


def join_by_sentence(
    sequence: list[Example], spans: list[Example], report: ReadReport
) -> list[Example]:
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
            report.note(
                "text differs between the two files (sequence file's text kept, spans dropped)",
                None,
            )
            continue
        target.relations = span_example.relations
        if target.seq_label == 0 and span_example.relations:
            report.note("label 0 but relations present")
    only_sequence = sum(1 for e in sequence if e.relations is None)
    if only_sequence:
        report.notes["sentence only in the sequence file"] += only_sequence
    return merged
