"""Input and output files of ``predict.py``: one prediction per input line, in order."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path

from causalmine.data.accounting import DataError
from causalmine.inference import SentencePrediction
from causalmine.inference.documents import ShardSpec, count_records, read_shard
from causalmine.settings import PREDICTION_FORMATS, ReadSettings


def read_texts(path: str | Path, text_column: str = "text") -> list[str]:
    """The texts of one input file, one per record and in order, read by the same readers as
    ``mine.py`` (:mod:`causalmine.inference.documents`): the ``text_column`` of a ``.jsonl``,
    ``.csv`` or ``.parquet``, or else the lines of the file (``.txt`` or any other name; empty
    lines kept, so output line i answers input line i); gzip or not. A record without text (bad UTF-8, not JSON, a null
    text) stops with its file, row and reason; a blank one is kept, and predicted as empty."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    settings = ReadSettings(text_column, txt_mode="line", max_document_chars=sys.maxsize)
    count, _ = count_records(path, settings, shard_size=sys.maxsize)
    whole_file = ShardSpec(str(path), str(path), file_index=0, shard=0, start=0, count=count)
    texts = []
    for record in read_shard(whole_file, settings):
        if record.error is None or record.blank:
            texts.append(record.text or "")
        else:
            raise DataError(f"{path}, row {record.row}: {record.error}")
    return texts


def prediction_record(index: int, prediction: SentencePrediction, output_format: str) -> dict:
    if output_format == "cnc":
        # the shared task's submission line; no relation = the untagged text
        return {"index": index, "prediction": prediction.tagged_texts() or [prediction.text]}
    return {"index": index, **prediction.to_json()}


def write_predictions(
    path: str | Path, predictions: Iterable[SentencePrediction], output_format: str
) -> int:
    """Write JSONL, one line per prediction; returns the number of lines written."""
    if output_format not in PREDICTION_FORMATS:
        raise ValueError(
            f"output_format must be one of {PREDICTION_FORMATS}, got {output_format!r}"
        )
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
