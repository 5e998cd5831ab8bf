"""Score a CNC subtask-2 submission file against a gold file.

    python -m causalmine.score GOLD.csv PRED.jsonl [--json]

``GOLD.csv``: CNC grouped format (``text``, ``causal_text_w_pairs``; ``index`` optional), one row
per sentence. ``PRED.jsonl``: the shared task's submission format, one line per gold row in the
same order, ``{"index": i, "prediction": [tagged texts]}`` (``index``, when given, is the row's
position or its gold ``index``); blank lines are ignored, as the official scorer ignores them. Prints the official CNC 2022 figures, ours (pooled) and the CNC
2023 (FairEval) figures; with ``--json`` the last line is one JSON object with the metric names
of ``metrics.json`` (``span_f1``, ``span_f1_pooled``, ``span_f1_2023``, …).

Any problem (row count, bad JSON, bad or mismatched tags) stops with an error naming the file
and line; nothing is skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causalmine.data.accounting import DataError, ReadReport
from causalmine.data.formats import iter_csv, parse_relation_list
from causalmine.data.tags import TagError, parse_tagged
from causalmine.scoring.span_scoring import (
    KINDS,
    TALLY_WIDTH,
    RelationTags,
    summarize,
    tally_sentence,
)
from causalmine.scoring.tables import print_span_table


@dataclass
class GoldRow:
    index: str
    text: str
    relations: list[RelationTags]
    where: str


def _relation(tagged: str, text: str, where: str) -> RelationTags:
    try:
        parsed = parse_tagged(tagged, text)
    except TagError as err:
        raise DataError(f"{where}: {err.reason}: {err} in {tagged[:120]!r}") from None
    return RelationTags.from_tagged(tagged, parsed.relation)


def read_gold(path: Path) -> list[GoldRow]:
    """The gold rows of a CNC grouped file, relations in the file's order."""
    report = ReadReport(str(path))
    rows = []
    for row in iter_csv(path, ["text", "causal_text_w_pairs"], report):
        where = f"{path}, row {row.number}"
        text = row.values["text"]
        try:
            tagged = parse_relation_list(row.values["causal_text_w_pairs"])
        except (ValueError, SyntaxError) as err:
            raise DataError(
                f"{where}: causal_text_w_pairs is not a list of strings ({err})"
            ) from None
        relations = [_relation(t, text, where) for t in tagged]
        rows.append(GoldRow(row.values.get("index", "").strip(), text, relations, where))
    return rows


def read_submission(path: Path, gold: list[GoldRow]) -> list[list[RelationTags]]:
    """The predicted relations of each gold row; every line is checked against its gold row."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    lines = [
        (number, line)
        for number, line in enumerate(path.read_text(encoding="utf-8-sig").split("\n"), start=1)
        if line.strip()
    ]
    if len(lines) != len(gold):
        raise DataError(f"{path}: {len(lines)} predictions but the gold file has {len(gold)} rows")
    predictions = []
    for position, ((number, line), row) in enumerate(zip(lines, gold, strict=True)):
        where = f"{path}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg})") from None
        tagged = record.get("prediction") if isinstance(record, dict) else None
        if not isinstance(tagged, list) or not all(isinstance(t, str) for t in tagged):
            raise DataError(f"{where}: 'prediction' must be a list of tagged texts")
        index = record.get("index")
        if index is not None and index != position and str(index) != row.index:
            raise DataError(
                f"{where}: index {index} but this line scores gold row {position} ({row.where})"
            )
        predictions.append([_relation(t, row.text, where) for t in tagged])
    return predictions


def score_files(gold_path: str | Path, submission_path: str | Path) -> dict[str, float]:
    """All span figures of a submission file (see :mod:`causalmine.scoring.span_scoring`)."""
    gold = read_gold(Path(gold_path))
    predictions = read_submission(Path(submission_path), gold)
    total = np.zeros((len(KINDS), TALLY_WIDTH))
    for row, predicted in zip(gold, predictions, strict=True):
        total += tally_sentence(row.relations, predicted)
    return summarize(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m causalmine.score", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("gold", help="CNC grouped gold file (e.g. dev_subtask2_grouped.csv)")
    parser.add_argument("submission", help="submission JSONL, one line per gold row")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of all figures")
    args = parser.parse_args(argv)
    try:
        metrics = score_files(args.gold, args.submission)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print_span_table(metrics, f"{args.submission} against {args.gold}")
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
