"""Corpus readers: real CNC files, BOMs, empty cells, bad rows named by file and row."""

from __future__ import annotations

from pathlib import Path

import pytest

from causalmine.data.accounting import DataError
from causalmine.data.corpora import load_cnc
from causalmine.data.formats import read_grouped_file, read_sequence_file

BOM = "\ufeff"


def write(path: Path, text: str) -> Path:
    path.write_text(BOM + text, encoding="utf-8")
    return path


def test_cnc_is_joined_by_sentence(data_root):
    corpus = load_cnc(data_root, download=False)
    assert (len(corpus.train), len(corpus.test)) == (3075, 340)
    for report in corpus.reports:
        assert report.rows_read == report.rows_used + report.rows_rejected
        assert report.rows_rejected == 0
    first = corpus.train[0]
    assert first.id == "train_01_0_892" and first.doc_id == "train_01_0"
    assert first.seq_label == 1 and len(first.relations) == 1
    # every causal sentence has relations and every non-causal one has none
    assert all((e.seq_label == 1) == bool(e.relations) for e in corpus.train + corpus.test)
    assert max(len(e.relations) for e in corpus.train) == 5


def test_relations_are_sorted_by_position(data_root):
    corpus = load_cnc(data_root, download=False)
    for e in corpus.train:
        firsts = [r.first_word for r in e.relations]
        assert firsts == sorted(firsts)


def test_empty_cell_and_empty_list_mean_no_relation(tmp_path):
    path = write(
        tmp_path / "g.csv",
        "corpus,doc_id,sent_id,eg_id,index,text,causal_text_w_pairs,num_rs\n"
        "x,d1,1,0,x_d1_1_0,a b,,\n"
        "x,d2,2,0,x_d2_2_0,c d,[],0\n"
        "x,d3,3,0,x_d3_3_0,e f,\"['<ARG0>e</ARG0> <ARG1>f</ARG1>']\",1\n",
    )
    examples, report = read_grouped_file(path, "x", "raise")
    assert [len(e.relations) for e in examples] == [0, 0, 1]
    assert report.rows_used == 3


def test_bad_row_is_named_in_raise_mode(tmp_path):
    path = write(tmp_path / "s.csv", "index,text,label\na_1,fine text,1\nb_2,other text,maybe\n")
    with pytest.raises(DataError, match=r"s\.csv, row 3: bad label"):
        read_sequence_file(path, "x", "raise")


def test_bad_rows_are_counted_in_skip_mode(tmp_path):
    path = write(
        tmp_path / "g.csv",
        "corpus,doc_id,sent_id,eg_id,index,text,causal_text_w_pairs,num_rs\n"
        "x,d1,1,0,i1,a b,\"['<ARG0>a</ARG0> <ARG1>b</ARG1>']\",1\n"
        "x,d2,2,0,i2,a b,\"['<ARG0>a b']\",1\n"
        "x,d3,3,0,i3,a b,[not python,1\n"
        'x,d4,4,0,i4,   ,"[]",0\n',
    )
    examples, report = read_grouped_file(path, "x", "skip")
    assert len(examples) == 1
    assert report.rows_read == 4 and report.rows_used == 1
    assert dict(report.rejected) == {"unclosed tag": 1, "bad relation list": 1, "empty text": 1}


def test_missing_column_and_file(tmp_path):
    with pytest.raises(DataError, match="missing column"):
        read_sequence_file(write(tmp_path / "s.csv", "index,txt,label\na,b,1\n"), "x", "raise")
    with pytest.raises(DataError, match="file not found"):
        read_sequence_file(tmp_path / "nope.csv", "x", "raise")


def test_non_utf8_bytes_name_the_row(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes(b"index,text,label\na_1,ok,1\nb_2,caf\xe9,0\n")
    with pytest.raises(DataError, match=r"s\.csv, row 3: not valid UTF-8"):
        read_sequence_file(path, "x", "raise")
