"""The ``LightningModule``: the unified network, its loss, optimizer, schedule and metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from transformers import AutoConfig

from causalmine.data.encoding import IGNORE_INDEX
from causalmine.data.tags import Relation
from causalmine.decode import (
    DEFAULT_METHOD,
    DEFAULT_REQUIRED_KINDS,
    check_force_relation,
    check_method,
    decode_batch,
)
from causalmine.metrics.stage_metrics import StageMetrics
from causalmine.model.freezing import FreezeConfig, apply_static_freezing
from causalmine.model.losses import LossBreakdown, LossWeights, unified_loss
from causalmine.model.network import CausalNetwork, NetworkConfig, NetworkOutput
from causalmine.nonfinite import dump_nonfinite, nonfinite_dir
from causalmine.optim import OptimConfig, build_optimizer
from causalmine.resume import ResumePoint
from causalmine.rng import capture_rng_states

log = logging.getLogger(__name__)

STAGES = ("val", "test")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EvalBatchOutput:
    """What an evaluation step predicted; callbacks receive it as ``outputs``."""

    # task (seq, pair) -> (gold, predicted class) for the batch rows labelled for that task
    labels: dict[str, tuple[torch.Tensor, torch.Tensor]]
    # decoded relations per sentence; None when no sentence of the batch has span labels
    relations: list[list[Relation]] | None


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
        freeze: dict[str, Any] | None = None,
        corpora: list[str] | None = None,
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
        self.optim_config = OptimConfig(**(optim or {}))
        self.freeze_config = FreezeConfig(**(freeze or {}))
        self.parameter_counts = apply_static_freezing(self.network, self.freeze_config)
        self.required_kinds = tuple((decode or {}).get("required_kinds", DEFAULT_REQUIRED_KINDS))
        # checkpoints from before decode.method decode as they did then; eval.py may change it
        self.decode_method = check_method((decode or {}).get("method", DEFAULT_METHOD))
        self.force_relation = check_force_relation(
            bool((decode or {}).get("force_relation", False)), self.decode_method
        )
        self.metrics = nn.ModuleDict(
            {stage: StageMetrics(stage, corpora or []) for stage in STAGES}
        )
        self._resume_point: ResumePoint | None = None  # set by a resumed fit

    def forward(self, batch: dict[str, Any]) -> NetworkOutput:
        return self.network(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        # before dropout draws: a replay of a non-finite step gets the same masks
        rng_states = capture_rng_states(torch_only=True)
        out = self(batch)
        losses = unified_loss(
            out.seq_logits, out.pair_logits, out.ce_logits, out.sig_logits, batch, self.loss_weights
        )
        if not torch.isfinite(losses.total):
            self._stop_on_nonfinite(batch, losses, rng_states)
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

    def _stop_on_nonfinite(
        self, batch: dict[str, Any], losses: LossBreakdown, rng_states: dict[str, Any]
    ) -> None:
        trainer = self.trainer
        saved = dump_nonfinite(
            nonfinite_dir(
                trainer.default_root_dir, self.global_step, trainer.global_rank, trainer.world_size
            ),
            batch,
            self,
            rng_states,
            losses,
        )
        ids = [e.id for e in batch["meta"].examples]
        raise NonFiniteLossError(
            f"non-finite training loss {losses.total.item()} at global step {self.global_step} "
            f"(seq {losses.seq.item()}, span {losses.span.item()}, pair {losses.pair.item()}); "
            f"batch example ids: {ids}. The batch, its random state and the model/optimizer "
            f"state are saved in {saved}; replay: "
            f"python -c \"from causalmine.nonfinite import replay_nonfinite; print(replay_nonfinite('{saved}'))\""
        )

    def _eval_step(self, batch: dict[str, Any], stage: str) -> EvalBatchOutput:
        out = self(batch)
        losses = unified_loss(
            out.seq_logits, out.pair_logits, out.ce_logits, out.sig_logits, batch, self.loss_weights
        )
        self.log(
            f"{stage}/loss", losses.total, batch_size=batch["input_ids"].shape[0], sync_dist=True
        )
        labelled = {}
        for task, logits, labels in (
            ("seq", out.seq_logits, batch["seq_labels"]),
            ("pair", out.pair_logits, batch["pair_labels"]),
        ):
            keep = labels != IGNORE_INDEX
            if keep.any():
                # argmax = probability above 0.5, the threshold the F1 metrics use
                labelled[task] = (labels[keep], logits[keep].argmax(-1))
        examples = batch["meta"].examples
        predicted = None
        if any(e.relations is not None for e in examples):
            predicted = decode_batch(
                out.ce_logits,
                out.sig_logits,
                batch["meta"].word_positions,
                self.required_kinds,
                self.decode_method,
                (out.seq_logits.argmax(-1) == 1).tolist() if self.force_relation else None,
            )
        self.metrics[stage].update(
            examples,
            {
                "seq": out.seq_logits.float().softmax(-1)[:, 1],
                "pair": out.pair_logits.float().softmax(-1)[:, 1],
            },
            {"seq": batch["seq_labels"], "pair": batch["pair_labels"]},
            predicted,
        )
        return EvalBatchOutput(labelled, predicted)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> EvalBatchOutput:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> EvalBatchOutput:
        return self._eval_step(batch, "test")

    def _seen_on_any_device(self, flag: bool) -> bool:
        total = self.trainer.strategy.reduce(
            torch.tensor(float(flag), device=self.device), reduce_op="sum"
        )
        return bool(total > 0)

    def _log_stage(self, stage: str) -> None:
        self.log_dict(self.metrics[stage].compute_and_reset(self._seen_on_any_device))

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")

    def backbone_thawed(self) -> bool:
        """False while a ``gradual`` backbone is still frozen."""
        policy = self.freeze_config
        return policy.policy != "gradual" or self.current_epoch >= policy.unfreeze_at_epoch

    def on_fit_start(self) -> None:
        counts = {f"params/{k}": v for k, v in self.parameter_counts.items()}
        log.info("parameters: %s", ", ".join(f"{k.split('/')[1]} {v:,}" for k, v in counts.items()))
        for logger in self.loggers:
            logger.log_hyperparams(counts)

    def on_train_epoch_start(self) -> None:
        # the schedule's factors for thawing groups changed with the epoch: apply them now,
        # not one optimizer step late
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_lr(), strict=True):
                group["lr"] = lr

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if not self.backbone_thawed():
            # no gradient, no AdamW update or weight decay: the frozen backbone stays bit-identical
            for group in optimizer.param_groups:
                if group.get("thaws"):
                    for param in group["params"]:
                        param.grad = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = capture_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # only a resumed fit restores them (not eval, predict or a fine-tune from the weights)
        fitting = self._trainer is not None and self._trainer.state.fn == TrainerFn.FITTING
        self._resume_point = ResumePoint.from_checkpoint(checkpoint) if fitting else None

    def on_train_start(self) -> None:
        if self._resume_point is not None:
            self._resume_point.apply(self.trainer)
            self._resume_point = None

    def configure_optimizers(self) -> dict[str, Any]:
        total = int(self.trainer.estimated_stepping_batches)
        optimizer, scheduler = build_optimizer(
            self.network, self.optim_config, self.freeze_config, total, self.backbone_thawed
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
