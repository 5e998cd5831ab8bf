"""The ``LightningModule``: the unified network, its loss, optimizer, schedule and metrics.

What keeps a run honest (exact resume, the non-finite guard, gradual unfreezing) lives in
:mod:`causalmine.training` as callbacks; every fit runs with ``training_callbacks()``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from transformers import AutoConfig

from causalmine.model.freezing import apply_static_freezing
from causalmine.model.gradient_surgery import pcgrad_backward, trained_terms
from causalmine.model.losses import TASKS, LossBreakdown, unified_loss
from causalmine.model.network import CausalNetwork, NetworkOutput
from causalmine.optim import build_optimizer, parameter_groups, thawing_parameters
from causalmine.precision import run_numerics
from causalmine.scoring.decode import decode_batch
from causalmine.scoring.stage_metrics import EvalBatchOutput, StageMetrics
from causalmine.settings import (
    ConfigError,
    DecodeConfig,
    FreezeConfig,
    LossWeights,
    NetworkConfig,
    OptimConfig,
    require_viterbi_for_crf,
    saved_section,
)

STAGES = ("val", "test")


# settings a resumed fit may change: how AdamW computes, not what it computes
RESUMABLE_CHANGES = ("fused",)


def _plain(value: Any) -> Any:
    """A setting compared across a resume (a tuple and a list of the same values are alike)."""
    return list(value) if isinstance(value, tuple) else value


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
        # loss.weighting=uncertainty: one learned log variance per task (losses.TASKS), trained
        # with the heads; not part of the network, so exports and predictions never see it
        self.loss_log_variances = (
            nn.Parameter(torch.zeros(len(TASKS))) if self.loss_weights.learned else None
        )
        self.optim_config = OptimConfig(**(optim or {}))
        self.freeze_config = FreezeConfig(**(freeze or {}))
        self.parameter_counts = apply_static_freezing(self.network, self.freeze_config)
        # checkpoints from before decode.method decode as they did then; eval.py may change it
        decode_config = DecodeConfig(**(decode or {}))
        self.required_kinds = tuple(decode_config.required_kinds)
        self.decode_method = decode_config.method
        require_viterbi_for_crf(self.network.config.span_crf, self.decode_method)
        self.force_relation = decode_config.force_relation
        self.relation_order = decode_config.relation_order
        self.score_by_corpus(corpora or [])
        self.trained_numerics: dict[str, Any] | None = None  # a loaded checkpoint's: see eval.py
        self.last_losses: LossBreakdown | None = None  # the last training step's, for the guard

    def score_by_corpus(self, corpora: list[str]) -> None:
        """Score validation and test overall and, with several ``corpora``, per corpus: those of
        the data trained on, or of the data ``eval.py`` reads (a checkpoint on other data)."""
        self.metrics = nn.ModuleDict({s: StageMetrics(s, corpora) for s in STAGES})

    @property
    def loss_parameters(self) -> list[nn.Parameter]:
        """The parameters of the loss itself (``loss.weighting=uncertainty``'s log variances):
        their own optimizer group, never projected by gradient surgery."""
        return [] if self.loss_log_variances is None else [self.loss_log_variances]

    def forward(self, batch: dict[str, Any]) -> NetworkOutput:
        return self.network(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        )

    def compute_losses(
        self, out: NetworkOutput, batch: dict[str, Any], epoch: int | None = None
    ) -> LossBreakdown:
        """The task losses of ``batch`` and their total, as this run weighs them: in training as
        ``epoch`` (by default the current one) does, see ``LossWeights.seq_start_epoch``; in
        evaluation plainly (``LossWeights.for_evaluation``; ``epoch`` is not read)."""
        weights = self.loss_weights
        if self.training:
            weights = weights.at_epoch(self.current_epoch if epoch is None else epoch)
        else:
            weights = weights.for_evaluation()
        return unified_loss(
            out.seq_logits,
            out.pair_logits,
            out.cause_effect_logits,
            out.signal_logits,
            batch,
            weights,
            self.loss_log_variances,
            self.network.span_heads.crf_scores(),
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.last_losses = self.compute_losses(self(batch), batch)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", losses.total, prog_bar=True, batch_size=size)
        parts = {f"train/{part}_loss": getattr(losses, part) for part in TASKS}
        if self.loss_log_variances is not None:  # the learned weight exp(-s_t) of each task
            learned = torch.exp(-self.loss_log_variances.detach())
            parts |= {
                f"train/{task}_learned_weight": w for task, w in zip(TASKS, learned, strict=True)
            }
        self.log_dict(parts, batch_size=size)
        return losses.total

    def setup(self, stage: str) -> None:
        surgery = self.loss_weights.gradient_surgery
        if stage == "fit" and surgery != "none" and self.trainer.world_size > 1:
            raise ConfigError(
                f"loss.gradient_surgery={surgery} runs on one device, not "
                f"{self.trainer.world_size}: its per-task backward passes bypass DDP's "
                "gradient reduction"
            )

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """The backward pass of a training step; with ``loss.gradient_surgery=pcgrad`` and two
        or more tasks trained by the batch, one pass per task and PCGrad's projection in the
        shared parameters (:func:`causalmine.model.gradient_surgery.pcgrad_backward`)."""
        losses = self.last_losses
        trained: dict[str, torch.Tensor] = {}
        silent = None
        if self.loss_weights.gradient_surgery == "pcgrad" and losses is not None:
            trained, silent = trained_terms(losses)
        if len(trained) < 2:  # one task (or none) to train: nothing to project
            super().backward(loss, *args, **kwargs)
            return
        scaler = self._loss_scaler()
        accumulate = self.trainer.accumulate_grad_batches

        def scale(term: torch.Tensor) -> torch.Tensor:
            # what Lightning did to the total: 1 / accumulation steps, then the fp16 loss scale
            term = term / accumulate
            return scaler.scale(term) if scaler is not None else term

        cosines = pcgrad_backward(
            trained,
            self._stepping_parameters(),
            scale,
            unprojected=self.loss_parameters,
            silent=silent,
        )
        self.log_dict(
            {f"train/gradient_cosine_{pair}": c for pair, c in cosines.items()}, batch_size=1
        )

    def _stepping_parameters(self) -> list[nn.Parameter]:
        """The parameters this optimizer step updates: trainable ones, less the backbone while
        gradual unfreezing still holds it (its gradients are dropped before the step)."""
        held = set()
        if not self.backbone_thawed():
            held = {id(p) for p in thawing_parameters(self.trainer.optimizers)}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in held]

    def _eval_step(self, batch: dict[str, Any], stage: str) -> EvalBatchOutput:
        out = self(batch)
        size = batch["input_ids"].shape[0]
        self.log(
            f"{stage}/loss", self.compute_losses(out, batch).total, batch_size=size, sync_dist=True
        )
        predicted = None
        if any(e.relations is not None for e in batch["meta"].examples):
            predicted = decode_batch(
                out.cause_effect_logits,
                out.signal_logits,
                batch["meta"].word_positions,
                self.required_kinds,
                self.decode_method,
                (out.seq_logits.argmax(-1) == 1).tolist() if self.force_relation else None,
                self.network.span_heads.transitions(),
                self.relation_order,
            )
        return self.metrics[stage].update_batch(out, batch, predicted)

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

    def _loss_scaler(self) -> Any:
        """The trainer's fp16 loss scaler, or None (fp32, bf16 and CPU runs have none)."""
        return getattr(self.trainer.precision_plugin, "scaler", None)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip as Lightning does, except under mixed precision without a loss scaler (bf16).

        Lightning's mixed-precision plugin refuses to clip for any optimizer that unscales
        gradients itself, such as our default fused AdamW, which stopped every bf16-mixed run at
        its first step. bf16 autocast scales no loss, so its gradients are at their true scale
        and clipping them before the fused step is exact. Under fp16's scaler the optimizer is
        foreach instead (:func:`causalmine.optim.use_fused`) and Lightning clips.
        """
        plugin = self.trainer.precision_plugin
        mixed_unscaled = isinstance(plugin, L.pytorch.plugins.MixedPrecision) and (
            self._loss_scaler() is None
        )
        if not (gradient_clip_val is not None and gradient_clip_val > 0 and mixed_unscaled):
            super().configure_gradient_clipping(
                optimizer, gradient_clip_val, gradient_clip_algorithm
            )
            return
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if (gradient_clip_algorithm or "norm") == "norm":
            nn.utils.clip_grad_norm_(parameters, gradient_clip_val)
        else:
            nn.utils.clip_grad_value_(parameters, gradient_clip_val)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # how this run computes its validation figures; eval.py computes alike by default
        checkpoint["numerics"] = run_numerics(self.trainer.precision)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.trained_numerics = checkpoint.get("numerics")  # None before it was recorded
        # only a resumed fit loads the optimizer states; eval, predict and export read weights
        if self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING:
            self.check_optimizer_groups(checkpoint)
            self.check_training_settings(checkpoint)

    def check_training_settings(self, checkpoint: dict[str, Any]) -> None:
        """A resume under other ``loss``/``optim`` values than the checkpoint was trained with
        fails here. The optimizer and scheduler states would carry the saved learning rates on
        while the loss took the new values: a run that is neither, e.g. after a change of the
        defaults (RESULTS §8s). A key the checkpoint predates reads as the dataclass default
        (what it was trained with); AdamW's kernel (``optim.fused``) may differ."""
        saved = checkpoint.get("hyper_parameters") or {}
        differences = []
        for section, build, mine in (
            ("loss", LossWeights, self.loss_weights),
            ("optim", OptimConfig, self.optim_config),
        ):
            theirs = saved_section(build, saved.get(section))
            differences += [
                f"{section}.{key}={_plain(value)!r} (this run: {_plain(getattr(mine, key))!r})"
                for key, value in theirs.items()
                if key not in RESUMABLE_CHANGES and _plain(value) != _plain(getattr(mine, key))
            ]
        if differences:
            raise ConfigError(
                "the checkpoint was trained with " + ", ".join(differences) + ": resume with "
                "those settings (a resume continues its optimizer and schedule), or start a new "
                "run without ckpt_path"
            )

    def check_optimizer_groups(self, checkpoint: dict[str, Any]) -> None:
        """A resume whose ``optim``/``freeze`` settings lay out other optimizer groups than the
        checkpoint's fails here: torch would load the saved states into whichever groups have
        the same sizes (one head's AdamW moments into another's) without a word."""
        saved = [
            [(g.get("name"), len(g["params"])) for g in state.get("param_groups", [])]
            for state in checkpoint.get("optimizer_states") or []
        ]
        if not saved or any(name is None for name, _ in saved[0]):
            return  # weights only, or groups from before they were named
        groups = parameter_groups(
            self.network, self.optim_config, self.freeze_config, self.loss_parameters
        )
        expected = [(g["name"], len(g["params"])) for g in groups]
        if saved[0] != expected:
            raise ConfigError(
                "the checkpoint's optimizer groups (name, parameters) are "
                f"{saved[0]}, this run's optim/freeze settings give {expected}: resume with the "
                "settings the checkpoint was trained with (optim.*_lr, freeze.*)"
            )

    def on_train_start(self) -> None:
        self._check_warm_up_fits_max_steps()

    def _check_warm_up_fits_max_steps(self) -> None:
        """``trainer.max_epochs`` is checked with the config (``TrainConfig``); a step budget
        only once the steps per epoch are known (here, before the first step): one that ends
        inside the span warm-up would never train the sequence loss. ``fast_dev_run`` (one
        step, to see that everything runs) is let through."""
        weights, max_steps = self.loss_weights, self.trainer.max_steps
        batches = self.trainer.num_training_batches
        if weights.alpha <= 0 or weights.seq_start_epoch == 0 or self.trainer.fast_dev_run:
            return
        if max_steps is None or max_steps < 0 or not math.isfinite(batches):
            return
        per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches)
        warm_up = weights.seq_start_epoch * per_epoch
        if max_steps <= warm_up:
            raise ConfigError(
                f"trainer.max_steps={max_steps} ends inside the span warm-up "
                f"(loss.seq_start_epoch={weights.seq_start_epoch} epochs of {per_epoch} steps = "
                f"{warm_up} steps): the sequence loss would never train. Raise max_steps, "
                "lower loss.seq_start_epoch, or set alpha=0 for a span-only run"
            )

    def configure_optimizers(self) -> dict[str, Any]:
        total = int(self.trainer.estimated_stepping_batches)
        optimizer, scheduler = build_optimizer(
            self.network,
            self.optim_config,
            self.freeze_config,
            total,
            self.backbone_thawed,
            loss_parameters=self.loss_parameters,
            scaled_clipping=self._loss_scaler() is not None
            and (self.trainer.gradient_clip_val or 0) > 0,
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
