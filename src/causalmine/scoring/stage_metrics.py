"""All metrics of one evaluation stage (``val`` or ``test``): overall and per corpus.

Names: ``{stage}/seq_f1``, ``{stage}/span_f1``, ``{stage}/pair_f1``… over everything, and
``{stage}/{corpus}/seq_f1``… per corpus when the data has several corpora.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from causalmine.schema import IGNORE_INDEX, Example, Relation
from causalmine.scoring.classification import binary_metrics
from causalmine.scoring.span_metric import SpanF1

CLASSIFICATION_TASKS = ("seq", "pair")


def _key(scope: str) -> str:
    return "all" if not scope else "c_" + re.sub(r"\W", "_", scope)


@dataclass
class EvalBatchOutput:
    """What an evaluation step predicted; callbacks receive it as ``outputs``."""

    # task (seq, pair) -> (gold, predicted class) for the batch rows labelled for that task
    labels: dict[str, tuple[torch.Tensor, torch.Tensor]]
    # decoded relations per sentence; None when no sentence of the batch has span labels
    relations: list[list[Relation]] | None


class StageMetrics(nn.Module):
    """Sequence and pair classification metrics and CNC span scores, for all data and per corpus."""

    def __init__(self, stage: str, corpora: Sequence[str] = ()) -> None:
        super().__init__()
        self.stage = stage
        self.scopes = ["", *(corpora if len(corpora) > 1 else [])]
        self.classification = nn.ModuleDict(
            {
                f"{_key(s)}_{task}": binary_metrics(self._prefix(s) + f"{task}_")
                for s in self.scopes
                for task in CLASSIFICATION_TASKS
            }
        )
        self.spans = nn.ModuleDict({_key(s): SpanF1() for s in self.scopes})
        self._updated: set[str] = set()  # classification metrics that saw data this epoch

    def _prefix(self, scope: str) -> str:
        return f"{self.stage}/{scope}/" if scope else f"{self.stage}/"

    def update_batch(
        self, out: Any, batch: dict[str, Any], predicted: list[list[Relation]] | None
    ) -> EvalBatchOutput:
        """Update with one evaluation batch: the network's output ``out``, the batch, and the
        decoded relations (None when no row has span labels); return what was predicted."""
        labelled = {}
        for task, logits in (("seq", out.seq_logits), ("pair", out.pair_logits)):
            labels = batch[f"{task}_labels"]
            keep = labels != IGNORE_INDEX
            if keep.any():
                # argmax = probability above 0.5, the threshold the F1 metrics use
                labelled[task] = (labels[keep], logits[keep].argmax(-1))
        self.update(
            batch["meta"].examples,
            {
                "seq": out.seq_logits.float().softmax(-1)[:, 1],
                "pair": out.pair_logits.float().softmax(-1)[:, 1],
            },
            {"seq": batch["seq_labels"], "pair": batch["pair_labels"]},
            predicted,
        )
        return EvalBatchOutput(labelled, predicted)

    def update(
        self,
        examples: Sequence[Example],
        probabilities: dict[str, torch.Tensor],
        labels: dict[str, torch.Tensor],
        predicted: Sequence[Sequence[Relation]] | None,
    ) -> None:
        """``probabilities``/``labels``: per task (seq, pair), for every row of the batch (-100 = no label);
        ``predicted``: decoded relations per row, or None when no row has span labels."""
        for scope in self.scopes:
            rows = [i for i, e in enumerate(examples) if not scope or e.corpus == scope]
            if not rows:
                continue
            index = torch.tensor(rows, device=labels["seq"].device)
            for task in CLASSIFICATION_TASKS:
                task_labels = labels[task][index]
                keep = task_labels >= 0
                if keep.any():
                    key = f"{_key(scope)}_{task}"
                    self.classification[key].update(
                        probabilities[task][index][keep], task_labels[keep]
                    )
                    self._updated.add(key)
            if predicted is not None:
                self.spans[_key(scope)].update(
                    [examples[i].words for i in rows],
                    [examples[i].relations for i in rows],
                    [predicted[i] for i in rows],
                )

    def compute_and_reset(self, seen_anywhere: Callable[[bool], bool]) -> dict[str, float]:
        """Every metric with data, plus ``joint_f1`` (mean task F1) overall.

        ``seen_anywhere(flag)`` ORs a flag across devices: every device must call ``compute()``
        on a metric or none may (DDP), whatever data its own shard held.
        """
        values: dict[str, float] = {}
        for scope in self.scopes:
            task_f1 = []
            for task in CLASSIFICATION_TASKS:
                key = f"{_key(scope)}_{task}"
                if seen_anywhere(key in self._updated):
                    computed = {k: float(v) for k, v in self.classification[key].compute().items()}
                    values.update(computed)
                    task_f1.append(computed[f"{self._prefix(scope)}{task}_f1"])
                self.classification[key].reset()
            with warnings.catch_warnings():  # a split without span labels never updates it
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                span = self.spans[_key(scope)].compute()
            self.spans[_key(scope)].reset()
            if span["span_support"] > 0:
                values.update({f"{self._prefix(scope)}{k}": v for k, v in span.items()})
                task_f1.append(span["span_f1"])
            if task_f1 and not scope:
                # mean F1 of the tasks this split has labels for: the default checkpoint monitor
                values[f"{self.stage}/joint_f1"] = sum(task_f1) / len(task_f1)
        self._updated.clear()
        return values
