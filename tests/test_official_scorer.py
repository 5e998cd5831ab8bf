"""The CNC 2022 official scorer's own outputs, reproduced to 4 decimals, and the scoring command.

``../shared/fixtures/cnc2022_scorer/<n>/`` holds submission files for the CNC V2 dev split and
the official subtask-2 scorer's unchanged ``scores.txt`` for each (see its README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from causalmine.data.accounting import DataError
from causalmine.score import main, score_files
from tests.conftest import REPO

FIXTURES = Path(os.environ.get("CAUSALMINE_FIXTURES", REPO.parent / "shared" / "fixtures"))
SCORER = FIXTURES / "cnc2022_scorer"
FOLDERS = sorted(p for p in SCORER.glob("*") if (p / "official_scores.txt").is_file())
# official name -> ours
NAMES = {
    "F1": "span_f1",
    "Precision": "span_precision",
    "Recall": "span_recall",
    "Cause_F1": "span_cause_f1",
    "Cause_Precision": "span_cause_precision",
    "Cause_Recall": "span_cause_recall",
    "Effect_F1": "span_effect_f1",
    "Effect_Precision": "span_effect_precision",
    "Effect_Recall": "span_effect_recall",
    "Signal_F1": "span_signal_f1",
    "Signal_Precision": "span_signal_precision",
    "Signal_Recall": "span_signal_recall",
    "Cause_Number": "span_cause_support",
    "Effect_Number": "span_effect_support",
    "Signal_Number": "span_signal_support",
}


def official(folder: Path) -> dict[str, float]:
    lines = (folder / "official_scores.txt").read_text().splitlines()
    return {k: float(v) for k, v in (line.split(":", 1) for line in lines if ":" in line)}


@pytest.fixture(scope="module")
def gold(data_root) -> Path:
    return data_root / "cnc_v2" / "dev_subtask2_grouped.csv"


def test_all_five_fixtures_are_there():
    assert len(FOLDERS) == 5, f"expected 5 scorer fixtures under {SCORER}"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_matches_the_official_scorer_to_4_decimals(folder, gold):
    ours = score_files(gold, folder / "submission.jsonl")
    expected = official(folder)
    for name, key in NAMES.items():
        assert ours[key] == pytest.approx(expected[name], abs=5e-5), name


def test_the_fixtures_tell_the_rules_apart(gold):
    """The fixtures would catch the earlier, pooled reading: it differs by more than 1e-3."""
    differences = [
        abs(score_files(gold, f / "submission.jsonl")["span_f1_pooled"] - official(f)["F1"])
        for f in FOLDERS
    ]
    assert max(differences) > 1e-3


def test_command_prints_the_table_and_json(gold, capsys):
    folder = SCORER / "5"
    assert main([str(gold), str(folder / "submission.jsonl"), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert f"{figures['span_f1']:.4f}" == f"{official(folder)['F1']:.4f}"
    assert {"span_f1_pooled", "span_f1_2023", "span_cause_f1", "span_multi_f1"} <= figures.keys()
    assert any("CNC 2022 official" in line for line in out)


def test_command_runs_as_a_module(gold):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "causalmine.score",
            str(gold),
            str(SCORER / "1" / "submission.jsonl"),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"{json.loads(result.stdout.splitlines()[-1])['span_f1']:.4f}" == "0.4319"


def _lines(folder: Path) -> list[str]:
    return (folder / "submission.jsonl").read_text().splitlines()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines[:-1], "339 predictions but the gold file has 340 rows"),
        (lambda lines: ["{not json", *lines[1:]], "line 1: not valid JSON"),
        (
            lambda lines: ['{"index": 0, "prediction": "a string"}', *lines[1:]],
            "line 1: 'prediction' must be a list",
        ),
        (
            lambda lines: [lines[0], lines[0], *lines[2:]],
            "line 2: index 0 but this line scores gold row 1",
        ),
    ],
)
def test_bad_submission_files_name_the_line(tmp_path, gold, edit, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(edit(_lines(SCORER / "2"))) + "\n")
    with pytest.raises(DataError, match=message):
        score_files(gold, bad)


def test_bad_tags_and_other_words_name_the_line(tmp_path, gold):
    lines = _lines(SCORER / "2")
    record = json.loads(lines[0])
    text = record["prediction"][0]
    for broken, reason in (
        (text.replace("</ARG1>", "", 1), "unclosed tag"),
        ("other words " + text, "words differ from text"),
    ):
        record["prediction"] = [broken]
        (tmp_path / "bad.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
        with pytest.raises(DataError, match=f"bad.jsonl, line 1: {reason}"):
            score_files(gold, tmp_path / "bad.jsonl")
    assert main([str(gold), str(tmp_path / "missing.jsonl")]) == 2
