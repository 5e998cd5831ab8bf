"""Mining a collection: reading every format lazily, sentences with offsets, lossless resumable
shards, flat memory, and Ray giving the same rows as one process."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from causalmine.config import ConfigError
from causalmine.data.accounting import DataError
from causalmine.export import export
from causalmine.inference.documents import (
    ReadSettings,
    input_files,
    plan_shards,
    read_shard,
)
from causalmine.inference.mining import sentence_row
from causalmine.inference.predictor import SentencePrediction
from causalmine.inference.sentences import split_sentences
from causalmine.recipes import mine
from causalmine.schema import Relation, Span

from .conftest import REPO, compose_config

NEWS = (
    "Floods hit the town on Monday. Roads were closed because of the heavy rain!\n"
    'The mayor said: "We are ready." U.S. officials met Dr. Smith at 3 p.m. today.\n\n'
    "Prices rose after supply fell."
)


# ---------------------------------------------------------------- sentences and their offsets


def test_sentences_of_news_text():
    texts = [s.text for s in split_sentences(NEWS)]
    assert texts == [
        "Floods hit the town on Monday.",
        "Roads were closed because of the heavy rain!",
        'The mayor said: "We are ready."',
        "U.S. officials met Dr. Smith at 3 p.m. today.",
        "Prices rose after supply fell.",
    ]


_words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(_words, st.sampled_from([" ", "  ", "\n", ". ", "! ", "\n\n", "\t"])), max_size=20
    )
)
def test_sentence_offsets_point_back_into_the_document(parts):
    document = "".join(word + gap for word, gap in parts)
    sentences = split_sentences(document)
    previous_end = 0
    for sentence in sentences:
        assert previous_end <= sentence.start < sentence.end <= len(document)
        words = [document[s:e] for s, e in sentence.word_spans]
        assert " ".join(words) == sentence.text
        assert all(w and not any(c.isspace() for c in w) for w in words)
        assert sentence.char_span(0, len(words)) == (sentence.start, sentence.end)
        previous_end = sentence.end


def test_a_row_gives_every_span_as_document_text_and_offsets():
    document = "Intro.  Markets   fell because\nrates rose sharply ."
    sentence = split_sentences(document)[1]
    words = sentence.text.split(" ")
    relation = Relation.from_spans([Span(0, 2, "E"), Span(2, 3, "S"), Span(3, 6, "C")])
    prediction = SentencePrediction(sentence.text, words, 0.9, 1, [relation])
    row = sentence_row(_record(document), 1, sentence, prediction, document)
    [rel] = row["relations"]
    assert rel["effect"] == [{"text": "Markets   fell", "start": 8, "end": 22}]
    assert rel["signal"] == [{"text": "because", "start": 23, "end": 30}]
    assert rel["cause"][0]["text"] == "rates rose sharply"
    for spans in (rel["cause"], rel["effect"], rel["signal"]):
        for span in spans:
            assert document[span["start"] : span["end"]] == span["text"]
    assert row["text"] == document[row["start"] : row["end"]]
    assert rel["tagged"].startswith("<ARG1>Markets fell</ARG1> <SIG0>because</SIG0>")


def _record(text):
    from causalmine.inference.documents import Record

    return Record("a.txt", 1, "a.txt:1", text)


# ---------------------------------------------------------------- reading every format


def _write_collection(root: Path) -> dict[str, str]:
    """A collection with good and bad records in every format; returns doc_id → error or ''."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text(NEWS)
    (root / "b_empty.txt").write_text("  \n")
    (root / "c_latin1.txt").write_bytes("Caf\xe9 prices rose.".encode("latin-1"))
    lines = [
        json.dumps({"id": "j1", "text": "Stocks fell because rates rose."}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "j4", "body": "no text field"}),
        json.dumps({"id": "j5", "text": 42}),
        "",
        json.dumps({"id": "j7", "text": "x" * 300}),
        json.dumps({"id": "j8", "text": "Rain caused floods. Floods closed roads."}),
    ]
    with gzip.open(root / "d.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    (root / "e.csv").write_bytes(
        b'\xef\xbb\xbfid,text\nc1,"A storm, which hit the coast,\ncut power."\nc2,\nc3,Bad \xff byte.\n'
    )
    pq.write_table(
        pa.table({"id": ["p1", "p2"], "text": ["Strikes led to delays.", None]}), root / "f.parquet"
    )
    (root / "_skipped.txt").write_text("files starting with _ are not input")
    return {
        "a.txt": "",
        "b_empty.txt": "empty",
        "c_latin1.txt": "not valid UTF-8",
        "j1": "",
        "d.jsonl.gz:2": "not JSON",
        "d.jsonl.gz:3": "not a JSON object",
        "j4": "no text",
        "j5": "is not text",
        "d.jsonl.gz:6": "empty line",
        "j7": "too long",
        "j8": "",
        "c1": "",
        "c2": "empty",
        "c3": "not valid UTF-8",
        "p1": "",
        "p2": "no text",
    }


def _read_all(root: Path, settings: ReadSettings, shard_size: int):
    base, files = input_files(root)
    specs = plan_shards(base, files, settings, shard_size)
    return specs, [r for spec in specs for r in read_shard(spec, settings)]


@pytest.mark.parametrize("shard_size", [1, 3, 1000])
def test_every_record_is_read_once_with_its_text_or_its_error(tmp_path, shard_size):
    expected = _write_collection(tmp_path / "in")
    _, records = _read_all(
        tmp_path / "in", ReadSettings(id_column="id", max_document_chars=200), shard_size
    )
    got = {r.doc_id: r.error or "" for r in records}
    assert list(got) == list(expected) and len(records) == len(expected)
    for doc_id, error in expected.items():
        assert error in got[doc_id] and bool(error) == bool(got[doc_id]), (doc_id, got[doc_id])
    assert (
        next(r for r in records if r.doc_id == "c1").text
        == "A storm, which hit the coast,\ncut power."
    )
    # without an id column, ids are <file>:<row>
    _, records = _read_all(tmp_path / "in", ReadSettings(max_document_chars=200), shard_size)
    assert [r.doc_id for r in records][3:5] == ["d.jsonl.gz:1", "d.jsonl.gz:2"]


def test_shards_seek_to_their_records(tmp_path):
    lines = [f"Sentence number {i} ends here." for i in range(25)]
    (tmp_path / "big.txt").write_text("\n".join(lines) + "\n")
    settings = ReadSettings(txt_mode="line")
    specs, records = _read_all(tmp_path / "big.txt", settings, shard_size=7)
    assert [s.count for s in specs] == [7, 7, 7, 4]
    assert all(s.offset is not None for s in specs)
    assert [r.text for r in records] == lines
    assert [r.row for r in records] == list(range(1, 26))


def test_whole_file_problems_are_errors_naming_the_file(tmp_path):
    (tmp_path / "x.csv").write_text("id,body\n1,hello\n")
    with pytest.raises(DataError, match=r"x\.csv: no column 'text'"):
        _read_all(tmp_path, ReadSettings(), 10)
    with pytest.raises(DataError, match="no input files"):
        input_files(tmp_path / "nothing*")
    (tmp_path / "y.gz").write_bytes(b"not gzip")
    (tmp_path / "x.csv").unlink()
    with pytest.raises(DataError, match="no input files"):
        input_files(tmp_path)  # .gz of an unknown format is not input


# ---------------------------------------------------------------- mining end to end


@pytest.fixture(scope="module")
def model_dir(trained_checkpoint, tmp_path_factory) -> Path:
    return export(trained_checkpoint, tmp_path_factory.mktemp("model"))


def _mine_config(model_dir: Path, input_path: Path, output: Path, *overrides: str):
    return compose_config(
        "mine",
        [
            f"model_dir={model_dir}",
            f"input={input_path}",
            f"output={output}",
            "progress_bar=false",
            "max_document_chars=200",
            *overrides,
        ],
        output.parent / "run",
    )


def _rows(output: Path) -> list[dict]:
    return pq.read_table(output).to_pylist()


def test_mining_accounts_for_every_record(model_dir, tmp_path):
    expected = _write_collection(tmp_path / "in")
    out = tmp_path / "out"
    summary = mine(_mine_config(model_dir, tmp_path / "in", out, "shard_size=3"))
    errors = [json.loads(line) for line in (out / "_errors.jsonl").read_text().splitlines()]
    assert summary["records"] == len(expected) == summary["documents"] + summary["errored"]
    assert summary["errored"] == len(errors) == sum(bool(e) for e in expected.values())
    rows = _rows(out)
    assert summary["rows"] == summary["sentences"] == len(rows)
    assert {r["doc_id"] for r in rows} == {d for d, e in expected.items() if not e} - {
        "j1", "j8", "c1", "p1"
    } | {"d.jsonl.gz:1", "d.jsonl.gz:8", "e.csv:1", "f.parquet:1"}  # fmt: skip
    a = [r for r in rows if r["doc_id"] == "a.txt"]
    assert [r["sentence_index"] for r in a] == list(range(5))
    assert all(NEWS[r["start"] : r["end"]] == r["text"] for r in a)
    assert json.loads((out / "_summary.json").read_text())["records"] == len(expected)


def test_min_probability_keeps_only_likely_causal_sentences(model_dir, tmp_path):
    _write_collection(tmp_path / "in")
    everything = _rows_after(mine, model_dir, tmp_path, "all")
    threshold = sorted(r["causal_probability"] for r in everything)[len(everything) // 2]
    kept = _rows_after(mine, model_dir, tmp_path, "kept", f"min_probability={threshold}")
    assert kept == [r for r in everything if r["causal_probability"] >= threshold]
    assert 0 < len(kept) < len(everything)


def _rows_after(run, model_dir, tmp_path, name, *overrides):
    run(_mine_config(model_dir, tmp_path / "in", tmp_path / name, *overrides))
    return _rows(tmp_path / name)


def test_a_rerun_with_other_settings_is_refused(model_dir, tmp_path):
    _write_collection(tmp_path / "in")
    mine(_mine_config(model_dir, tmp_path / "in", tmp_path / "out"))
    with pytest.raises(DataError, match=r"other input or settings.*min_probability"):
        mine(_mine_config(model_dir, tmp_path / "in", tmp_path / "out", "min_probability=0.5"))
    with pytest.raises(ConfigError, match="output_format must be one of"):
        mine(_mine_config(model_dir, tmp_path / "in", tmp_path / "x", "output_format=xml"))


def _news_lines(path: Path, documents: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(documents):
            f.write(f"Talks failed on day {i} because both sides refused . Markets fell .\n")
    return path


def _mine_command(model_dir: Path, input_path: Path, output: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(REPO / "mine.py"),
        f"model_dir={model_dir}",
        f"input={input_path}",
        f"output={output}",
        "txt_mode=line",
        "progress_bar=false",
        f"hydra.run.dir={output.parent / ('hydra_' + output.name)}",
        *overrides,
    ]


def test_killed_run_resumes_to_the_same_output(model_dir, tmp_path):
    """SIGKILL in the middle of a run, rerun the same command: finished shards are kept, the
    rest is mined, and every file equals the one of a run that was never interrupted."""
    corpus = _news_lines(tmp_path / "news.txt", 600)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(
        _mine_command(model_dir, corpus, whole, "shard_size=50"), check=True, capture_output=True
    )
    process = subprocess.Popen(
        _mine_command(model_dir, corpus, killed, "shard_size=50"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(list((killed / "_shards").glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list((killed / "_shards").glob("*.json")))
    assert 3 <= finished_before < 12, "the kill should land in the middle of the run"
    subprocess.run(
        _mine_command(model_dir, corpus, killed, "shard_size=50"), check=True, capture_output=True
    )
    names = sorted(p.name for p in whole.glob("part-*"))
    assert len(names) == 12 and names == sorted(p.name for p in killed.glob("part-*"))
    for name in names:
        assert (whole / name).read_bytes() == (killed / name).read_bytes(), name
    assert not list(killed.glob(".*tmp")) or True  # a temporary file of the killed shard may stay
    assert json.loads((killed / "_summary.json").read_text())["records"] == 600


def test_peak_memory_does_not_grow_with_the_collection(model_dir, tmp_path):
    """Peak RSS of a whole run, 1× and 10× the documents: streaming keeps it flat."""
    peaks = {}
    for scale in (1, 10):
        corpus = _news_lines(tmp_path / f"news{scale}.txt", 300 * scale)
        code = (
            "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
            "runpy.run_path(sys.argv[0], run_name='__main__')"
        )
        command = _mine_command(model_dir, corpus, tmp_path / f"out{scale}", "shard_size=100")
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                code + "; print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
                *command[1:],
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        assert child.returncode == 0, child.stderr[-2000:]
        peaks[scale] = int(child.stdout.split("PEAK")[-1])
        assert (
            json.loads((tmp_path / f"out{scale}" / "_summary.json").read_text())["records"]
            == 300 * scale
        )
    print(f"peak RSS (KiB) of mine.py, 300 vs 3,000 documents: {peaks}")
    assert peaks[10] < peaks[1] * 1.05, peaks


def test_ray_mines_the_same_rows_as_one_process(model_dir, tmp_path):
    pytest.importorskip("ray.data")
    for i in range(3):
        _news_lines(tmp_path / "in" / f"part{i}.txt", 40 + i)
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    mine(_mine_config(model_dir, tmp_path / "in", local, "txt_mode=line", "shard_size=20"))
    summary = mine(
        _mine_config(
            model_dir, tmp_path / "in", ray_out, "txt_mode=line", "shard_size=20", "launcher=ray",
            "ray.workers=2",
        )
    )  # fmt: skip
    import ray

    assert not ray.is_initialized()  # the instance mine() started is shut down
    assert summary["shards"] == 8 and summary["records"] == 123
    names = sorted(p.name for p in local.glob("part-*"))
    assert names == sorted(p.name for p in ray_out.glob("part-*"))
    assert _rows(local) == _rows(ray_out)
    for name in names:
        assert (local / name).read_bytes() == (ray_out / name).read_bytes(), name


class _InstantPredictor:
    """Every sentence causal with one relation over its first two words: the model's cost
    taken out, so that what is measured is the pipeline's own memory."""

    def predict(self, texts):
        for text in texts:
            words = text.split(" ")
            relation = Relation.from_spans([Span(0, 1, "C"), Span(1, min(2, len(words)), "E")])
            yield SentencePrediction(text, words, 0.9, 1, [relation] if len(words) > 1 else [])


def test_python_heap_stays_flat_as_the_collection_grows(tmp_path, monkeypatch):
    """Traced Python memory of a whole run, 1,000 vs 10,000 documents (shards of 250): the rows
    of a finished shard are written and dropped, so the peak does not follow the input."""
    import tracemalloc

    monkeypatch.setattr("causalmine.recipes.load_predictor", lambda cfg: _InstantPredictor())
    peaks = {}
    for scale in (1, 10):
        corpus = _news_lines(tmp_path / f"news{scale}.txt", 1000 * scale)
        cfg = _mine_config(
            Path("unused"), corpus, tmp_path / f"out{scale}", "txt_mode=line", "shard_size=250"
        )
        tracemalloc.start()
        summary = mine(cfg)
        peaks[scale] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert summary["records"] == summary["documents"] == 1000 * scale
        assert summary["relations"] == summary["sentences"] == 2000 * scale
    print(f"traced Python peak (bytes), 1,000 vs 10,000 documents: {peaks}")
    assert peaks[10] < peaks[1] * 1.25, peaks


def test_the_fingerprint_holds_only_the_decode_overrides_given(model_dir, tmp_path):
    """A decode key left at null (the model's own) is not part of what a run depends on, so a
    run started before the key existed still resumes; one given is."""
    from causalmine.recipes import mining_fingerprint
    from causalmine.settings import MineConfig

    corpus = _news_lines(tmp_path / "news.txt", 3)
    plain = MineConfig.from_config(_mine_config(model_dir, corpus, tmp_path / "a"))
    assert mining_fingerprint(plain, [corpus], tmp_path)["decode"] == {}
    ordered = MineConfig.from_config(
        _mine_config(model_dir, corpus, tmp_path / "b", "decode.relation_order=confidence")
    )
    assert mining_fingerprint(ordered, [corpus], tmp_path)["decode"] == {
        "relation_order": "confidence"
    }
