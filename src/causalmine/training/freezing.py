"""Freezing as the trainer sees it: parameter counts reported, gradual unfreezing enforced."""

from __future__ import annotations

import logging

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from causalmine.optim import thawing_parameters

log = logging.getLogger(__name__)


class ParameterCounts(Callback):
    """Logs the module's ``parameter_counts`` (trainable, frozen, …) when a fit starts."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = {f"params/{k}": v for k, v in pl_module.parameter_counts.items()}
        log.info("parameters: %s", ", ".join(f"{k.split('/')[1]} {v:,}" for k, v in counts.items()))
        for logger in trainer.loggers:
            logger.log_hyperparams(counts)


class GradualUnfreezing(Callback):
    """Keeps the optimizer's "thawing" groups (the backbone under ``freeze.policy=gradual``)
    untouched while ``pl_module.backbone_thawed()`` is false, and applies the schedule's new
    learning rates the moment an epoch starts."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the schedule's factors for thawing groups changed with the epoch: apply them now,
        # not one optimizer step late
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            for group, lr in zip(scheduler.optimizer.param_groups, scheduler.get_lr(), strict=True):
                group["lr"] = lr

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not pl_module.backbone_thawed():
            # no gradient, no AdamW update or weight decay: the frozen backbone stays bit-identical
            for param in thawing_parameters([optimizer]):
                param.grad = None
