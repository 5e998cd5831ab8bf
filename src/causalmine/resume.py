"""What an exact resume restores besides Lightning's own loop, optimizer and callback states.

The checkpoint holds the random states (saved by the LightningModule's ``on_save_checkpoint``)
and the training loader's position (Lightning saves it because ``ResumableDataLoader`` has a
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
from lightning.pytorch.utilities.combined_loader import CombinedLoader

from causalmine.rng import restore_rng_states


@dataclass
class ResumePoint:
    """The random states and training-loader states of a checkpoint being resumed."""

    rng_states: dict[str, Any] | None = None
    loader_states: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> ResumePoint:
        """Read them from a Lightning checkpoint (either may be absent in an older one)."""
        fit_loop = (checkpoint.get("loops") or {}).get("fit_loop") or {}
        loader_states = (fit_loop.get("state_dict") or {}).get("combined_loader") or []
        return cls(checkpoint.get("rng_states"), list(loader_states))

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
