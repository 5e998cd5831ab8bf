"""The ``LightningModule``: the unified network, its loss, optimizer, schedule and metrics."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
import torch
from torch import nn
from transformers import AutoConfig, get_linear_schedule_with_warmup

from causalmine.data.encoding import IGNORE_INDEX
from causalmine.decode import decode_batch
from causalmine.metrics import SpanF1, binary_metrics
from causalmine.model.losses import LossWeights, unified_loss
from causalmine.model.network import CausalNetwork, NetworkConfig, NetworkOutput

log = logging.getLogger(__name__)

STAGES = ("val", "test")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class CausalLitModule(L.LightningModule):
    """Trains and evaluates :class:`CausalNetwork` on sequence, span and pair labels at once.

    All arguments are plain dicts so that checkpoints hold only primitive types (they load with
    ``weights_only=True``). ``backbone_config`` is filled in on first construction, so a
    checkpoint rebuilds its backbone from config without a download.
    """

    def __init__(
        self,
        network: dict[str, Any],
        loss: dict[str, float] | None = None,
        optim: dict[str, Any] | None = None,
        decode: dict[str, Any] | None = None,
        backbone_config: dict[str, Any] | None = None,
        data_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.network_config = NetworkConfig(**network)
        rebuilt = None
        if backbone_config is not None:
            settings = dict(backbone_config)
            rebuilt = AutoConfig.for_model(settings.pop("model_type"), **settings)
        self.network = CausalNetwork(self.network_config, rebuilt)
        if backbone_config is None:
            self.hparams["backbone_config"] = self.network.backbone.config.to_dict()
        self.loss_weights = LossWeights(**(loss or {}))
        self.optim = {
            "lr": 5e-5,
            "head_lr": None,
            "weight_decay": 0.01,
            "warmup_ratio": 0.1,
            "betas": (0.9, 0.999),
            "eps": 1e-8,
            **(optim or {}),
        }
        self.required_kinds = tuple((decode or {}).get("required_kinds", ("C", "E")))
        self.metrics = nn.ModuleDict()
        for stage in STAGES:
            self.metrics[f"{stage}_seq"] = binary_metrics(f"{stage}/seq_")
            self.metrics[f"{stage}_pair"] = binary_metrics(f"{stage}/pair_")
            self.metrics[f"{stage}_span"] = SpanF1()
        self._updated: set[str] = set()  # metrics that saw data this epoch

    def forward(self, batch: dict[str, Any]) -> NetworkOutput:
        return self.network(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self(batch)
        losses = unified_loss(
            out.seq_logits, out.pair_logits, out.ce_logits, out.sig_logits, batch, self.loss_weights
        )
        if not torch.isfinite(losses.total):
            ids = [e.id for e in batch["meta"].examples]
            raise NonFiniteLossError(
                f"non-finite training loss {losses.total.item()} at global step {self.global_step} "
                f"(seq {losses.seq.item()}, span {losses.span.item()}, pair {losses.pair.item()}); batch example ids: {ids}"
            )
        size = batch["input_ids"].shape[0]
        self.log("train/loss", losses.total, prog_bar=True, batch_size=size)
        self.log_dict(
            {
                "train/seq_loss": losses.seq,
                "train/span_loss": losses.span,
                "train/pair_loss": losses.pair,
            },
            batch_size=size,
        )
        return losses.total

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        out = self(batch)
        losses = unified_loss(
            out.seq_logits, out.pair_logits, out.ce_logits, out.sig_logits, batch, self.loss_weights
        )
        self.log(
            f"{stage}/loss", losses.total, batch_size=batch["input_ids"].shape[0], sync_dist=True
        )
        for task, logits, labels in (
            ("seq", out.seq_logits, batch["seq_labels"]),
            ("pair", out.pair_logits, batch["pair_labels"]),
        ):
            keep = labels != IGNORE_INDEX
            if keep.any():
                self.metrics[f"{stage}_{task}"].update(logits[keep].softmax(-1)[:, 1], labels[keep])
                self._updated.add(f"{stage}_{task}")
        examples = batch["meta"].examples
        if any(e.relations is not None for e in examples):
            predicted = decode_batch(
                out.ce_logits, out.sig_logits, batch["meta"].word_positions, self.required_kinds
            )
            self.metrics[f"{stage}_span"].update([e.relations for e in examples], predicted)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _seen_on_any_device(self, key: str) -> bool:
        flag = torch.tensor(float(key in self._updated), device=self.device)
        return bool(self.trainer.strategy.reduce(flag, reduce_op="sum") > 0)

    def _log_stage(self, stage: str) -> None:
        values: dict[str, float] = {}
        task_f1 = []
        for task in ("seq", "pair"):
            key = f"{stage}_{task}"
            if self._seen_on_any_device(key):  # every device must take part in compute()
                computed = {k: float(v) for k, v in self.metrics[key].compute().items()}
                values.update(computed)
                task_f1.append(computed[f"{stage}/{task}_f1"])
            self.metrics[key].reset()
            self._updated.discard(key)
        with warnings.catch_warnings():  # a split without span labels never updates it
            warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
            span = self.metrics[f"{stage}_span"].compute()
        self.metrics[f"{stage}_span"].reset()
        if span["span_support"] > 0:
            values.update({f"{stage}/{k}": v for k, v in span.items()})
            task_f1.append(span["span_f1"])
        if task_f1:
            # mean F1 of the tasks this split has labels for: the default checkpoint monitor
            values[f"{stage}/joint_f1"] = sum(task_f1) / len(task_f1)
        self.log_dict(values)

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.optim
        head_lr = o["head_lr"] if o["head_lr"] is not None else o["lr"]
        groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
        for name, param in self.network.named_parameters():
            if not param.requires_grad:
                continue
            part = "backbone" if name.startswith("backbone.") else "heads"
            # no weight decay on biases and normalisation weights (all 1-d tensors)
            groups.setdefault((part, param.ndim >= 2), []).append(param)
        param_groups = [
            {
                "params": params,
                "lr": o["lr"] if part == "backbone" else head_lr,
                "weight_decay": o["weight_decay"] if decay else 0.0,
                "name": f"{part}{'' if decay else '_no_decay'}",
            }
            for (part, decay), params in sorted(groups.items())
        ]
        optimizer = torch.optim.AdamW(
            param_groups, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"]
        )
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(o.get("warmup_steps") or round(o["warmup_ratio"] * total))
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
