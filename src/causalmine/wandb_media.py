"""W&B media at the end of every validation: confusion matrices, span F1 per kind, and sample
span predictions. Scalar metrics go through ``self.log`` as usual; this callback adds what a
dashboard needs beyond them and does nothing when the run has no W&B logger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from causalmine.data.tags import render_tagged
from causalmine.schema import Example, Relation
from causalmine.scoring.stage_metrics import EvalBatchOutput

CLASS_NAMES = ("not causal", "causal")
SPAN_KINDS = (
    ("Overall", "span"),
    ("Cause", "span_cause"),
    ("Effect", "span_effect"),
    ("Signal", "span_signal"),
)
SPAN_COLUMNS = ["kind", "precision", "recall", "f1", "support"]
SAMPLE_COLUMNS = ["text", "gold", "predicted"]


def tagged(words: list[str], relations: list[Relation]) -> str:
    """Relations in the corpus format, one tagged copy of the sentence per line."""
    return "\n".join(render_tagged(words, r) for r in relations)


@dataclass
class ValidationRecord:
    """One validation epoch's predictions: class labels per task, and the first annotated sentences."""

    max_samples: int = 20
    gold: dict[str, list[int]] = field(default_factory=dict)
    predicted: dict[str, list[int]] = field(default_factory=dict)
    samples: list[list[str]] = field(default_factory=list)  # rows of SAMPLE_COLUMNS

    def add(self, output: EvalBatchOutput, examples: list[Example]) -> None:
        """Add one batch: its step output and the batch's examples (``batch["meta"].examples``)."""
        for task, (gold, predicted) in output.labels.items():
            self.gold.setdefault(task, []).extend(gold.tolist())
            self.predicted.setdefault(task, []).extend(predicted.tolist())
        if output.relations is None:
            return
        for example, relations in zip(examples, output.relations, strict=True):
            if len(self.samples) >= self.max_samples:
                break
            if example.relations is not None:
                gold_text = tagged(example.words, example.relations)
                self.samples.append([example.text, gold_text, tagged(example.words, relations)])

    def merge(self, others: list[ValidationRecord]) -> None:
        """Add the records of other processes (DDP ranks), keeping at most ``max_samples`` samples."""
        for other in others:
            for task, values in other.gold.items():
                self.gold.setdefault(task, []).extend(values)
                self.predicted.setdefault(task, []).extend(other.predicted[task])
            self.samples.extend(other.samples[: self.max_samples - len(self.samples)])


def span_kind_rows(metrics: dict[str, Any], stage: str = "val") -> list[list[Any]]:
    """Rows of ``SPAN_COLUMNS`` (Overall, Cause, Effect, Signal) from logged span metrics."""
    rows = []
    for name, prefix in SPAN_KINDS:
        values = [metrics.get(f"{stage}/{prefix}_{m}") for m in SPAN_COLUMNS[1:]]
        if all(v is not None for v in values):
            rows.append([name, *(float(v) for v in values)])
    return rows


def confusion_matrix_chart(record: ValidationRecord, task: str, title: str) -> Any:
    """W&B's confusion-matrix chart for a task (``seq`` or ``pair``) of the record."""
    import wandb

    return wandb.plot.confusion_matrix(
        y_true=record.gold[task],
        preds=record.predicted[task],
        class_names=list(CLASS_NAMES),
        title=title,
    )


def log_validation_media(
    logger: WandbLogger, record: ValidationRecord, metrics: dict[str, Any], step: int
) -> None:
    """Log the record's charts and tables, and the span table from ``metrics``, at ``step``."""
    import wandb

    media: dict[str, Any] = {}
    for task, name in (("seq", "sequence"), ("pair", "pair")):
        if record.gold.get(task):
            media[f"val/{task}_confusion_matrix"] = confusion_matrix_chart(
                record, task, f"{name} classification (validation)"
            )
    rows = span_kind_rows(metrics)
    if rows:
        table = wandb.Table(columns=SPAN_COLUMNS, data=rows)
        media["val/span_by_kind"] = table
        media["val/span_f1_by_kind"] = wandb.plot.bar(table, "kind", "f1", title="span F1 by kind")
    if record.samples:
        media["val/span_samples"] = wandb.Table(columns=SAMPLE_COLUMNS, data=record.samples)
    if media:
        logger.log_metrics(media, step=step)


class ValidationMedia(L.Callback):
    """After each validation (not the sanity check), logs to every W&B logger of the run:
    confusion matrices for the sequence (and pair) task, span P/R/F1 per kind, and a table
    of the first ``samples`` annotated sentences with their gold and predicted tagged texts."""

    def __init__(self, samples: int = 20) -> None:
        self.samples = samples
        self.loggers: list[WandbLogger] = []
        self.record = ValidationRecord(samples)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record = ValidationRecord(self.samples)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.loggers and not trainer.sanity_checking and isinstance(outputs, EvalBatchOutput):
            self.record.add(outputs, batch["meta"].examples)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.loggers or trainer.sanity_checking:
            return
        if trainer.world_size > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, self.record)
            self.record = gathered[0]
            self.record.merge(gathered[1:])
        if trainer.is_global_zero:
            metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            for logger in self.loggers:
                log_validation_media(logger, self.record, metrics, trainer.global_step)
