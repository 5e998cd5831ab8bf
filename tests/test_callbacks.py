"""The W&B media callback's data: confusion matrices, span rows and sample tables (no W&B run)."""

from __future__ import annotations

import pytest
import torch

from causalmine.data.tags import parse_tagged
from causalmine.schema import Example
from causalmine.scoring.stage_metrics import EvalBatchOutput
from causalmine.wandb_media import (
    CLASS_NAMES,
    SAMPLE_COLUMNS,
    ValidationRecord,
    confusion_matrix_chart,
    span_kind_rows,
)

GOLD = "<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell</ARG0> ."
PREDICTED = "<ARG1>Prices rose</ARG1> because <ARG0>supply</ARG0> fell ."


def _examples() -> list[Example]:
    causal = Example("a", "Prices rose because supply fell .", "d1", seq_label=1)
    causal.relations = [parse_tagged(GOLD).relation]
    plain = Example("b", "Nothing happened .", "d2", seq_label=0, relations=[])
    unannotated = Example("c", "No span labels here .", "d3", seq_label=0)
    return [causal, plain, unannotated]


def _output() -> EvalBatchOutput:
    return EvalBatchOutput(
        labels={"seq": (torch.tensor([1, 0, 0]), torch.tensor([1, 1, 0]))},
        relations=[[parse_tagged(PREDICTED).relation], [], []],
    )


def test_record_collects_labels_and_annotated_samples_in_corpus_format():
    record = ValidationRecord(max_samples=5)
    record.add(_output(), _examples())
    record.add(_output(), _examples())
    assert record.gold["seq"] == [1, 0, 0, 1, 0, 0]
    assert record.predicted["seq"] == [1, 1, 0, 1, 1, 0]
    # the unannotated sentence is no sample; the annotated one without relations is
    assert len(record.samples) == 4 and len(record.samples[0]) == len(SAMPLE_COLUMNS)
    assert record.samples[0] == ["Prices rose because supply fell .", GOLD, PREDICTED]
    assert record.samples[1] == ["Nothing happened .", "", ""]


def test_record_keeps_at_most_max_samples_also_when_merging_ranks():
    record, other = ValidationRecord(max_samples=3), ValidationRecord(max_samples=3)
    record.add(_output(), _examples())
    other.add(_output(), _examples())
    record.merge([other])
    assert len(record.samples) == 3
    assert record.gold["seq"] == [1, 0, 0, 1, 0, 0]


def test_confusion_matrix_chart_counts_gold_against_predicted():
    record = ValidationRecord()
    record.add(_output(), _examples())
    chart = confusion_matrix_chart(record, "seq", "sequence")
    assert chart.table.columns == ["Actual", "Predicted", "nPredictions"]
    counts = {(actual, predicted): n for actual, predicted, n in chart.table.data}
    no, yes = CLASS_NAMES
    assert counts == {(no, no): 1, (no, yes): 1, (yes, no): 0, (yes, yes): 1}


def test_span_rows_per_kind_from_logged_metrics():
    metrics = {"val/span_f1": 0.5, "val/span_precision": 0.4, "val/span_recall": 0.6}
    metrics["val/span_support"] = 10
    for kind, f1 in (("cause", 0.7), ("effect", 0.2), ("signal", 0.1)):
        metrics.update(
            {
                f"val/span_{kind}_f1": f1,
                f"val/span_{kind}_precision": f1,
                f"val/span_{kind}_recall": f1,
                f"val/span_{kind}_support": 3,
            }
        )
    rows = span_kind_rows({k: torch.tensor(v) for k, v in metrics.items()})
    assert [r[0] for r in rows] == ["Overall", "Cause", "Effect", "Signal"]
    assert rows[0] == ["Overall", pytest.approx(0.4), pytest.approx(0.6), 0.5, 10.0]
    assert rows[1][3] == pytest.approx(0.7) and rows[3][4] == 3.0
    assert span_kind_rows({"val/seq_f1": 1.0}) == []
