"""Error analysis: span error categories, and the analysis of a real (tiny) run."""

from __future__ import annotations

import json

from causalmine.analyze import CATEGORIES, PREDICTED_CATEGORIES, main, span_errors
from causalmine.data.corpora import load_cnc
from causalmine.recipes import train
from causalmine.schema import Relation, Span


def _relation(*spans: tuple[int, int, str]) -> Relation:
    return Relation.from_spans([Span(*s) for s in spans])


def test_every_span_gets_one_category():
    gold = [
        _relation((0, 3, "C"), (4, 5, "S"), (5, 9, "E")),
        _relation((10, 12, "C"), (12, 14, "E")),
    ]
    predicted = [
        _relation((0, 3, "C"), (5, 8, "E")),  # exact cause, effect with other boundaries
        _relation((10, 12, "E"), (15, 17, "C")),  # an effect where the gold has a cause; spurious
    ]
    counts = span_errors(gold, predicted)
    assert counts == {
        ("C", "exact"): 1,
        ("E", "boundary"): 1,
        ("E", "wrong_kind"): 1,
        ("C", "spurious"): 1,
        ("S", "missed"): 1,  # the signal
        ("C", "missed"): 1,  # the second cause: only an effect overlaps it
        ("E", "missed"): 1,  # the second effect (12-14): nothing overlaps it
    }
    # the same span in two predicted relations is one span
    assert span_errors(gold, predicted * 2) == counts
    assert span_errors([], []) == {}


def test_analysis_of_a_tiny_run(train_config, tmp_path, data_root, capsys):
    train(train_config("test=true", "trainer.max_epochs=2"))
    assert main([str(tmp_path), "--worst", "3", "--data-root", str(data_root)]) == 0
    out = tmp_path / "analysis"
    for png in ("learning_curves.png", "seq_confusion_matrix.png", "seq_pr_curve.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    rows = json.loads((out / "span_errors.json").read_text())["rows"]
    assert {r["kind"] for r in rows} == {"cause", "effect", "signal"}
    for row in rows:
        assert row["predicted"] == sum(row[c] for c in PREDICTED_CATEGORIES)
        assert row["exact"] + row["missed"] <= row["gold"]
    report = (out / "span_errors.md").read_text()
    assert "| corpus | kind | gold | predicted | " + " | ".join(CATEGORIES) in report
    assert report.count("- gold: ") >= 3  # the 3 worst sentences, each with its gold relations
    # the gold spans counted are those of the test split (its first 48 sentences here)
    test = load_cnc(data_root, download=False).test[:48]
    gold_causes = sum(
        len({(s.start, s.end) for r in e.relations or [] for s in r.causes}) for e in test
    )
    (cause,) = [r for r in rows if r["kind"] == "cause" and r["corpus"] == "all"]
    assert cause["gold"] == gold_causes > 0
    assert str(out) in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2
