"""Bad input through data=csv: the first bad row is named in raise mode; in skip mode every
rejected row is counted under its reason and training goes on with the good rows."""

from __future__ import annotations

import json

import pytest

from causalmine.data.accounting import DataError
from causalmine.recipes import train

GOOD = [
    "g{i},d{d},Prices rose because supply fell .,1,\"['<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell</ARG0> .']\"",
    "g{i},d{d},The sky is blue today .,0,[]",
]
# (reason counted in skip mode, the row)
BAD = [
    ("empty text", 'b1,d1,   ,1,"[]"'),
    ("bad label", 'b2,d1,Rain fell .,nan,"[]"'),
    ("bad label", 'b3,d1,Rain fell .,2,"[]"'),
    ("unclosed tag", "b4,d1,Rain fell .,1,\"['<ARG0>Rain fell .']\""),
    ("unopened tag", "b5,d1,Rain fell .,1,\"['Rain</ARG0> fell .']\""),
    ("nested tag", "b6,d1,Rain fell hard .,1,\"['<ARG0>Rain <ARG0>fell</ARG0> hard</ARG0> .']\""),
    ("unknown tag", "b7,d1,Rain fell .,1,\"['<ARG2>Rain</ARG2> fell .']\""),
    ("unknown tag", "b8,d1,Rain fell .,1,\"['<ARG0 >Rain</ARG0> fell .']\""),
    ("words differ from text", "b9,d1,Rain fell .,1,\"['<ARG0>Snow</ARG0> <ARG1>fell</ARG1> .']\""),
    ("bad relation list", 'b10,d1,Rain fell .,1,"[\'<ARG0>Rain</ARG0>"'),
    ("duplicate index", 'g0,d1,Rain fell .,1,"[]"'),
]
NOT_UTF8 = b'b12,d1,Caf\xe9 closed .,0,"[]"'
LONG = "long,d9,{words} because {words} .,1,\"['<ARG1>{words}</ARG1> because <ARG0>{words}</ARG0> .']\""


def _write(path, good: int = 30):
    lines = ["id,doc,text,label,relations"]
    lines += [GOOD[i % 2].format(i=i, d=i % 6) for i in range(good // 2)]
    lines += [row for _, row in BAD]
    lines += [LONG.format(words=" ".join(["many"] * 150))]
    lines += [GOOD[i % 2].format(i=i, d=i % 6) for i in range(good // 2, good)]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8") + NOT_UTF8 + b"\n")
    return path


def _overrides(path):
    return [
        "data=csv",
        f"data.train_file={path}",
        f"data.test_file={path}",
        "data.columns.id=id",
        "data.columns.doc_id=doc",
        "data.columns.relations=relations",
        "data.max_length=64",
        "data.drop_leaked=false",  # the test file is the training file here
    ]


def test_raise_mode_names_the_first_bad_row(train_config, tmp_path):
    path = _write(tmp_path / "corpus.csv")
    with pytest.raises(DataError, match=r"corpus\.csv, row 17: empty text"):
        train(train_config(*_overrides(path)))


def test_skip_mode_counts_every_bad_row_and_trains(train_config, tmp_path):
    path = _write(tmp_path / "corpus.csv")
    metrics = train(train_config(*_overrides(path), "data.on_error=skip"))
    assert "test/seq_f1" in metrics
    written = json.loads((tmp_path / "metrics.json").read_text())
    report = written["data"]["reports"][0]
    expected: dict[str, int] = {}
    for reason, _ in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    expected["not valid UTF-8"] = 1
    assert report["rejected"] == expected
    assert report["rows_read"] == 30 + len(BAD) + 2
    assert (
        report["rows_used"] == 31
        and report["rows_read"] == report["rows_used"] + report["rows_rejected"]
    )
    # the 300-word sentence is kept: truncated for training, counted, and scored in full
    train_stats = written["data"]["splits"]["train"]
    test_stats = written["data"]["splits"]["test"]
    assert (
        train_stats["truncated_examples"] + written["data"]["splits"]["val"]["truncated_examples"]
        == 1
    )
    assert test_stats["truncated_examples"] == 1


def test_missing_or_misspelt_column_is_named(train_config, tmp_path):
    path = _write(tmp_path / "corpus.csv")
    with pytest.raises(DataError, match=r"missing column\(s\) \['relation'\]"):
        train(train_config(*_overrides(path), "data.columns.relations=relation"))


def test_missing_file_is_named(train_config, tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        train(train_config(*_overrides(tmp_path / "nope.csv")))
