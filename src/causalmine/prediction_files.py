"""Input and output files of ``predict.py``: one prediction per input line, in order."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from causalmine.data.accounting import DataError
from causalmine.inference import SentencePrediction

OUTPUT_FORMATS = ("jsonl", "cnc")


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """Texts of a ``.txt`` file (one per line, empty lines kept) or of a CSV's text column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not valid UTF-8 ({err.reason})") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(content, newline=""))
        if text_column not in (reader.fieldnames or []):
            raise DataError(
                f"{path}: no column {text_column!r} (columns: {reader.fieldnames}); set text_column=NAME"
            )
        return [row[text_column] or "" for row in reader]
    # splitlines() would also split on \x85, \u2028 …, which can sit inside a sentence
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def prediction_record(index: int, prediction: SentencePrediction, output_format: str) -> dict:
    if output_format == "cnc":
        # the shared task's submission line; no relation = the untagged text
        return {"index": index, "prediction": prediction.tagged_texts() or [prediction.text]}
    return {"index": index, **prediction.to_json()}


def write_predictions(
    path: str | Path, predictions: Iterable[SentencePrediction], output_format: str
) -> int:
    """Write JSONL, one line per prediction; returns the number of lines written."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for index, prediction in enumerate(predictions):
            fh.write(json_line(prediction_record(index, prediction, output_format)))
            count += 1
    return count


# json.dumps(ensure_ascii=False) leaves these raw inside strings; str.splitlines() and many
# JSONL readers break lines at them
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: dict) -> str:
    """One JSONL line: UTF-8 text kept readable, and no character any reader takes for a line end."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"
