"""Document collections read lazily: files, their records, and the shards they are mined in.

Formats (``.gz`` allowed on the text ones): ``.txt`` (one document per file, or per line with
``txt_mode=line``), ``.jsonl`` / ``.csv`` / ``.parquet`` (a text column and an optional id
column). One *record* is one would-be document: a line, a row, a ``.txt`` file. A record that
cannot be a document (bad encoding, empty, too long, no text field …) is kept with its reason,
so that every record ends either mined or in the error list, never lost.

A problem with a whole file (unreadable, a CSV without the text column) is a :class:`DataError`
raised while the shards are planned, before any model work.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from causalmine.data.accounting import DataError
from causalmine.settings import ReadSettings

FORMATS = ("txt", "jsonl", "csv", "parquet")
# why a record holds nothing to read: blank text, a blank line of a .jsonl file
EMPTY, EMPTY_LINE = "empty", "empty line"
BLANK_REASONS = (EMPTY, EMPTY_LINE)
_EXTENSIONS = {".txt": "txt", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_PARQUET = ".parquet"


@dataclass(frozen=True)
class Record:
    """One input record: the document text, or why it is not a document (``error``)."""

    source: str  # the file, relative to the collection's root
    row: int  # 1-based: the line (txt lines, jsonl), the data row (csv, parquet); 1 for a file
    doc_id: str
    text: str | None  # also kept for an "empty" record (blank text)
    error: str | None = None

    @property
    def blank(self) -> bool:
        """A record with nothing to read: blank text, or a blank line of a ``.jsonl`` file."""
        return self.error in BLANK_REASONS


@dataclass(frozen=True)
class ShardSpec:
    """``count`` records of one file from record ``start`` (``offset``: its byte offset, when
    the format can seek to it). Shards never cross files, so a shard's name and content depend
    on its file alone."""

    path: str
    source: str
    file_index: int
    shard: int
    start: int
    count: int
    offset: int | None = None

    @property
    def name(self) -> str:
        return f"part-{self.file_index:05d}-{self.shard:05d}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_format(path: Path) -> str | None:
    """``txt`` / ``jsonl`` / ``csv`` / ``parquet`` from the name (``.gz`` looked through), else None."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(_PARQUET) and not path.name.lower().endswith(".gz"):
        return "parquet"
    return _EXTENSIONS.get(os.path.splitext(name)[1])


def input_files(pattern: str | Path) -> tuple[Path, list[Path]]:
    """The collection's root and its files, sorted: a file, every known file under a folder
    (recursively), or the files a glob matches. Raises :class:`DataError` when there are none."""
    path = Path(pattern)
    if path.is_file():
        files, root = [path], path.parent
    elif path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and file_format(p)]
        root = path
    else:
        files = [Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file()]
        root = Path(os.path.commonpath([p.parent for p in files])) if files else path.parent
    files = sorted(p for p in files if not p.name.startswith((".", "_")))
    if not files:
        raise DataError(f"{pattern}: no input files (.txt, .jsonl, .csv, .parquet, optionally .gz)")
    for p in files:
        if file_format(p) is None:
            raise DataError(f"{p}: unknown input format (use .txt, .jsonl, .csv or .parquet)")
    return root, files


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _decoded(raw: bytes, first: bool) -> tuple[str | None, str | None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, f"not valid UTF-8 ({err.reason} at byte {err.start})"
    return (text.removeprefix("\ufeff") if first else text), None


def _line_based(path: Path, settings: ReadSettings) -> bool:
    kind = file_format(path)
    return kind == "jsonl" or (kind == "txt" and settings.txt_mode == "line")


def count_records(
    path: Path, settings: ReadSettings, shard_size: int
) -> tuple[int, list[int | None]]:
    """How many records ``path`` holds, and the byte offset of every ``shard_size``-th record
    (``None`` where the format cannot seek: CSV, Parquet, one-document text files)."""
    kind = file_format(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            _check_columns(path, names, settings)
            n = parquet.metadata.num_rows
            return n, [None] * _shards(n, shard_size)
        if kind == "txt" and settings.txt_mode == "document":
            return 1, [None]
        if kind == "csv":
            with _csv_text(path) as text:
                reader = csv.reader(text)
                _check_columns(path, next(reader, []), settings)
                n = sum(1 for _ in reader)
            return n, [None] * _shards(n, shard_size)
        offsets: list[int | None] = []
        n = 0
        with _open_binary(path) as f:
            while True:
                position = f.tell()
                line = f.readline()
                if not line:
                    break
                if n % shard_size == 0:
                    offsets.append(position)
                n += 1
        return n, offsets
    except (OSError, EOFError, gzip.BadGzipFile, csv.Error) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None


def _shards(n: int, shard_size: int) -> int:
    return -(-n // shard_size)  # ceil


def _check_columns(path: Path, names: list[str], settings: ReadSettings) -> None:
    for column in (settings.text_column, settings.id_column):
        if column is not None and column not in names:
            raise DataError(
                f"{path}: no column {column!r} (columns: {list(names)}); "
                "set text_column= / id_column="
            )


def _csv_text(path: Path) -> io.TextIOWrapper:
    # surrogateescape: a bad byte spoils its own row (reported), not the whole file
    return io.TextIOWrapper(
        _open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def plan_shards(
    root: Path, files: list[Path], settings: ReadSettings, shard_size: int
) -> list[ShardSpec]:
    """Every file cut into shards of at most ``shard_size`` records, in file order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    specs = []
    for file_index, path in enumerate(files):
        n, offsets = count_records(path, settings, shard_size)
        for shard, offset in enumerate(offsets):
            start = shard * shard_size
            specs.append(
                ShardSpec(
                    str(path),
                    path.relative_to(root).as_posix(),
                    file_index,
                    shard,
                    start,
                    min(shard_size, n - start),
                    offset,
                )
            )
    return specs


def read_shard(spec: ShardSpec, settings: ReadSettings) -> Iterator[Record]:
    """The records of one shard, read lazily, each with its text or its error."""
    path = Path(spec.path)
    kind = file_format(path)
    if kind == "parquet":
        raw = _parquet_rows(path, settings, spec.start, spec.count)
    elif kind == "csv":
        raw = _csv_rows(path, settings, spec.start, spec.count)
    elif kind == "txt" and settings.txt_mode == "document":
        raw = _whole_file(path, spec.source)
    else:
        raw = _lines(path, settings, spec, kind == "jsonl")
    for row, text, doc_id, error in raw:
        yield _record(spec.source, row, text, doc_id, error, settings)


_Raw = Iterator[tuple[int, str | None, str | None, str | None]]  # row, text, id, error


def _record(
    source: str,
    row: int,
    text: str | None,
    doc_id: str | None,
    error: str | None,
    settings: ReadSettings,
) -> Record:
    doc_id = doc_id if doc_id is not None else f"{source}:{row}"
    if error is None:
        if text is None:
            error = f"no text ({settings.text_column!r} missing or null)"
        elif any("\udc80" <= c <= "\udcff" for c in text):
            error = "not valid UTF-8"
        elif not text.strip():
            error = EMPTY
        elif len(text) > settings.max_document_chars:
            error = f"too long: {len(text):,} characters > max_document_chars={settings.max_document_chars:,}"
    # an empty record keeps its (blank) text: predict.py answers it in its place
    return Record(source, row, doc_id, text if error in (None, EMPTY) else None, error)


def _whole_file(path: Path, source: str) -> _Raw:
    with _open_binary(path) as f:
        text, error = _decoded(f.read(), first=True)
    yield 1, text, source, error  # a one-document file is known by its path


def _lines(path: Path, settings: ReadSettings, spec: ShardSpec, is_json: bool) -> _Raw:
    with _open_binary(path) as f:
        if spec.offset is not None:
            f.seek(spec.offset)
            skip = 0
        else:
            skip = spec.start
        row = spec.start - skip
        for raw in f:
            row += 1
            if skip:
                skip -= 1
                continue
            if row > spec.start + spec.count:
                break
            text, error = _decoded(raw.removesuffix(b"\n").removesuffix(b"\r"), first=row == 1)
            if not is_json or error:
                yield row, text, None, error
                continue
            yield (row, *_json_fields(text, settings))


def _json_fields(line: str, settings: ReadSettings) -> tuple[str | None, str | None, str | None]:
    if not line.strip():
        return None, None, EMPTY_LINE
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        return None, None, f"not JSON ({err.msg}, column {err.colno})"
    if not isinstance(value, dict):
        return None, None, f"not a JSON object (a {type(value).__name__})"
    return _fields(value.get(settings.text_column), value.get(settings.id_column or ""), settings)


def _fields(
    text: Any, doc_id: Any, settings: ReadSettings
) -> tuple[str | None, str | None, str | None]:
    doc_id = None if doc_id is None or doc_id == "" else str(doc_id)
    if text is not None and not isinstance(text, str):
        return None, doc_id, f"{settings.text_column!r} is not text (a {type(text).__name__})"
    if settings.id_column is not None and doc_id is None:
        return None, None, f"no id ({settings.id_column!r} missing or empty)"
    return text, doc_id, None


def _csv_rows(path: Path, settings: ReadSettings, start: int, count: int) -> _Raw:
    with _csv_text(path) as text:
        reader = csv.DictReader(text)
        for row, values in enumerate(reader, start=1):
            if row <= start:
                continue
            if row > start + count:
                break
            yield (
                row,
                *_fields(
                    values.get(settings.text_column), values.get(settings.id_column or ""), settings
                ),
            )


def _parquet_rows(path: Path, settings: ReadSettings, start: int, count: int) -> _Raw:
    import pyarrow.parquet as pq

    columns = [c for c in (settings.text_column, settings.id_column) if c is not None]
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=columns):
        if row + batch.num_rows <= start:
            row += batch.num_rows
            continue
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            row += 1
            if row <= start:
                continue
            if row > start + count:
                return
            doc_id = data[settings.id_column][i] if settings.id_column else None
            yield (row, *_fields(data[settings.text_column][i], doc_id, settings))
