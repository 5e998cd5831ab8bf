"""Mining a document collection: documents → sentences → predictions → Parquet/JSONL shards.

The collection is cut into shards (:func:`~causalmine.inference.documents.plan_shards`); each
shard is mined on its own by a :class:`ShardMiner` and written atomically: its rows, then its
manifest (counts and the errors of its records) under ``_shards/``. A shard with a manifest is
finished, so a rerun after a kill mines only the rest and gives the same files as a run that
was never interrupted. Shards are independent, which is also what lets Ray mine them in
parallel (:mod:`causalmine.inference.mining_ray`).

Output directory::

    part-FFFFF-SSSSS.parquet   one row per kept sentence (or .jsonl)
    _shards/part-….json        per shard: documents, sentences, errors
    _errors.jsonl              every record that is not a document, and why
    _summary.json              the totals; documents read = mined + errored
    _run.json                  the input files and settings this directory was mined with

Files starting with ``_`` are skipped by Parquet readers, so ``pandas.read_parquet(DIR)`` reads
the rows alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from causalmine.data.accounting import DataError
from causalmine.data.tags import render_tagged
from causalmine.inference.documents import ReadSettings, Record, ShardSpec, read_shard
from causalmine.inference.predictor import Predictor, SentencePrediction
from causalmine.inference.sentences import Sentence, split_sentences
from causalmine.settings import MineSettings

SHARDS_DIR = "_shards"
Progress = Callable[[int, int], None]  # (documents, sentences) just finished


def _span_type():
    import pyarrow as pa

    return pa.list_(pa.struct([("text", pa.string()), ("start", pa.int64()), ("end", pa.int64())]))


def row_schema():
    """The Arrow schema of the output rows (one per sentence)."""
    import pyarrow as pa

    relation = pa.struct(
        [
            ("cause", _span_type()),
            ("effect", _span_type()),
            ("signal", _span_type()),
            ("tagged", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("source", pa.string()),
            ("row", pa.int64()),
            ("sentence_index", pa.int64()),
            ("start", pa.int64()),
            ("end", pa.int64()),
            ("text", pa.string()),
            ("causal_probability", pa.float64()),
            ("label", pa.int64()),
            ("relations", pa.list_(relation)),
        ]
    )


def sentence_row(
    record: Record, index: int, sentence: Sentence, prediction: SentencePrediction, document: str
) -> dict[str, Any]:
    """One output row: where the sentence is, what the model says, each relation's spans with
    their text and character offsets in the document."""

    def spans(relation, kind: str) -> list[dict[str, Any]]:
        out = []
        for span in relation.of_kind(kind):
            start, end = sentence.char_span(span.start, span.end)
            out.append({"text": document[start:end], "start": start, "end": end})
        return out

    return {
        "doc_id": record.doc_id,
        "source": record.source,
        "row": record.row,
        "sentence_index": index,
        "start": sentence.start,
        "end": sentence.end,
        "text": document[sentence.start : sentence.end],
        "causal_probability": prediction.causal_probability,
        "label": prediction.label,
        "relations": [
            {
                "cause": spans(r, "C"),
                "effect": spans(r, "E"),
                "signal": spans(r, "S"),
                "tagged": render_tagged(prediction.words, r),
            }
            for r in prediction.relations
        ],
    }


class ShardMiner:
    """Mines shards with one predictor: read, split, predict, write atomically."""

    def __init__(
        self, predictor: Predictor, output_dir: str | Path, read: ReadSettings, mine: MineSettings
    ) -> None:
        self.predictor = predictor
        self.output_dir = Path(output_dir)
        self.read = read
        self.mine = mine

    def output_path(self, spec: ShardSpec) -> Path:
        return self.output_dir / f"{spec.name}.{self.mine.output_format}"

    def rows(
        self, spec: ShardSpec, tally: dict, progress: Progress | None = None
    ) -> Iterator[dict]:
        """The kept rows of a shard, in order. ``tally`` gets the shard's ``errors`` (records
        that are not documents) and its ``sentences`` count."""
        documents: list[tuple[Record, list[Sentence]]] = []
        for record in read_shard(spec, self.read):
            if record.error is None:
                documents.append((record, split_sentences(record.text)))
            else:
                tally["errors"].append(
                    {
                        "source": record.source,
                        "row": record.row,
                        "doc_id": record.doc_id,
                        "error": record.error,
                    }
                )
        if progress and tally["errors"]:
            progress(len(tally["errors"]), 0)
        predictions = self.predictor.predict(
            s.text for _, sentences in documents for s in sentences
        )
        threshold = self.mine.min_probability
        for record, sentences in documents:
            # predictions is one stream over the whole shard: zip takes this document's share
            for index, (sentence, prediction) in enumerate(
                zip(sentences, predictions, strict=False)
            ):
                tally["causal_sentences"] += prediction.label == 1
                tally["relations"] += len(prediction.relations)
                if threshold is None or prediction.causal_probability >= threshold:
                    yield sentence_row(record, index, sentence, prediction, record.text)
            tally["sentences"] += len(sentences)
            if progress:
                progress(1, len(sentences))

    def mine_shard(self, spec: ShardSpec, progress: Progress | None = None) -> dict[str, Any]:
        """Mine one shard, write its rows and then its manifest; return the manifest."""
        start = time.perf_counter()
        tally: dict[str, Any] = {
            "errors": [],
            "sentences": 0,
            "causal_sentences": 0,
            "relations": 0,
        }
        rows = list(self.rows(spec, tally, progress))
        _write_atomic(
            self.output_path(spec), lambda tmp: _write_rows(tmp, rows, self.mine.output_format)
        )
        manifest = {
            "shard": spec.name,
            "source": spec.source,
            "records": spec.count,
            "documents": spec.count - len(tally["errors"]),
            "errored": len(tally["errors"]),
            "sentences": tally["sentences"],
            "rows": len(rows),
            "causal_sentences": tally["causal_sentences"],
            "relations": tally["relations"],
            "seconds": round(time.perf_counter() - start, 3),
            "errors": tally["errors"],
        }
        _write_atomic(
            manifest_path(self.output_dir, spec), lambda tmp: tmp.write_text(json.dumps(manifest))
        )
        return manifest


def manifest_path(output_dir: Path, spec: ShardSpec) -> Path:
    return output_dir / SHARDS_DIR / f"{spec.name}.json"


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """Write to a temporary name in the same folder, then rename: a file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_rows(path: Path, rows: list[dict], output_format: str) -> None:
    if output_format == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=row_schema()), path)


TOTALS = ("records", "documents", "errored", "sentences", "causal_sentences", "relations", "rows")


def start_run(output_dir: Path, fingerprint: dict[str, Any]) -> None:
    """Claim ``output_dir`` for this input and these settings, or check that an earlier run
    there used the same ones (so that resuming it is sound)."""
    run_file = output_dir / "_run.json"
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back
    if run_file.exists():
        earlier = json.loads(run_file.read_text())
        if earlier != fingerprint:
            differ = sorted(
                k for k in {*earlier, *fingerprint} if earlier.get(k) != fingerprint.get(k)
            )
            raise DataError(
                f"{output_dir} holds a mining run with other input or settings "
                f"(different: {', '.join(differ)}); choose a new output directory or delete it"
            )
        return
    _write_atomic(run_file, lambda tmp: tmp.write_text(json.dumps(fingerprint, indent=1)))


def finished(output_dir: Path, spec: ShardSpec) -> dict[str, Any] | None:
    """The manifest of a shard mined before, or None."""
    path = manifest_path(output_dir, spec)
    return json.loads(path.read_text()) if path.exists() else None


def mine_locally(
    miner: ShardMiner, specs: Iterable[ShardSpec], progress: Progress | None = None
) -> Iterator[dict]:
    """Mine the shards one after another in this process; yield each manifest."""
    for spec in specs:
        yield miner.mine_shard(spec, progress)


def write_summary(output_dir: Path, specs: list[ShardSpec], seconds: float) -> dict[str, Any]:
    """``_errors.jsonl`` and ``_summary.json`` from every shard's manifest; the summary is
    returned. Raises if a shard is missing or the records do not add up."""
    manifests = []
    for spec in specs:
        manifest = finished(output_dir, spec)
        if manifest is None:
            raise RuntimeError(f"shard {spec.name} ({spec.source}) was not mined")
        manifests.append(manifest)
    totals = {key: sum(m[key] for m in manifests) for key in TOTALS}
    if totals["records"] != totals["documents"] + totals["errored"]:
        raise RuntimeError(f"records do not add up: {totals}")
    _write_atomic(
        output_dir / "_errors.jsonl",
        lambda tmp: tmp.write_text(
            "".join(
                json.dumps(e, ensure_ascii=False) + "\n" for m in manifests for e in m["errors"]
            )
        ),
    )
    summary = {
        **totals,
        "shards": len(specs),
        "files": len({s.source for s in specs}),
        "seconds": round(seconds, 3),
    }
    _write_atomic(
        output_dir / "_summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=1))
    )
    return summary


@contextmanager
def mining_progress(total: int, done: int, enabled: bool = True) -> Iterator[Progress]:
    """A rich progress bar over documents with documents/s, sentences/s and the time left;
    yields the callback that advances it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    columns = (
        TextColumn("mining"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "documents · {task.fields[docs_per_s]:,.1f} documents/s · {task.fields[sents_per_s]:,.1f} sentences/s"
        ),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Bar(*columns, disable=not enabled) as bar:
        task = bar.add_task("mining", total=total, completed=done, docs_per_s=0.0, sents_per_s=0.0)
        start, counts = time.perf_counter(), [0, 0]

        def advance(documents: int, sentences: int) -> None:
            counts[0] += documents
            counts[1] += sentences
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.update(
                task,
                advance=documents,
                docs_per_s=counts[0] / elapsed,
                sents_per_s=counts[1] / elapsed,
            )

        yield advance
