"""What an exact resume restores besides Lightning's own loop, optimizer and callback states.

The checkpoint holds the random states (saved by the :class:`ExactResume` callback) and the
training loader's position (Lightning saves it because ``ResumableDataLoader`` has a
``state_dict``). Both are applied at train start, right before the first resumed batch:

- the random states, because the sanity check and the loaders' set-up come between the
  checkpoint restore and the first batch;
- the loader's position, because Lightning hands it to the loader only when the loader is
  created after the loop state is restored, and ``configure_optimizers`` (through
  ``trainer.estimated_stepping_batches``) creates it before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.combined_loader import CombinedLoader

from causalmine.training.rng import capture_rng_states, restore_rng_states


@dataclass
class ResumePoint:
    """The random states and training-loader states of a checkpoint being resumed."""

    rng_states: dict[str, Any] | None = None
    loader_states: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], rank: int = 0) -> ResumePoint:
        """Read this rank's from a Lightning checkpoint (either may be absent in an older one;
        one without per-rank states gives every rank the first rank's)."""
        fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
        loader_states = (fit_loop.get("state_dict") or {}).get("combined_loader") or []
        per_rank = checkpoint.get("rng_states_per_rank") or []
        rng_states = per_rank[rank] if rank < len(per_rank) else checkpoint.get("rng_states")
        return cls(rng_states, list(loader_states))

    def apply(self, trainer: L.Trainer) -> None:
        """Position the training loaders and reset every random generator."""
        if self.loader_states:
            loaders = [
                loader
                for loader in CombinedLoader(trainer.train_dataloader).flattened
                if callable(getattr(loader, "load_state_dict", None))
            ]
            for loader, state in zip(loaders, self.loader_states, strict=True):
                loader.load_state_dict(state)
        if self.rng_states is not None:
            restore_rng_states(self.rng_states)


class ExactResume(Callback):
    """Saves the random states in every checkpoint and, when a fit resumes from one, restores
    them and the training loaders' positions right before the first resumed batch."""

    def __init__(self) -> None:
        self._resume_point: ResumePoint | None = None

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = capture_rng_states()
        checkpoint["rng_states"] = states
        if trainer.world_size > 1:
            # every rank draws its own dropout masks: each must get its own states back (the
            # checkpoint is built on every rank, written by the first)
            per_rank: list[Any] = [None] * trainer.world_size
            torch.distributed.all_gather_object(per_rank, states)
            checkpoint["rng_states_per_rank"] = per_rank

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # only a resumed fit restores them (not eval, predict or a fine-tune from the weights)
        fitting = trainer.state.fn == TrainerFn.FITTING
        self._resume_point = (
            ResumePoint.from_checkpoint(checkpoint, trainer.global_rank) if fitting else None
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._resume_point is not None:
            self._resume_point.apply(trainer)
            self._resume_point = None
