"""What a non-finite training loss leaves behind, and how to replay it.

When the loss of a training step is NaN or infinite, :func:`dump_nonfinite` writes into
``<output dir>/nonfinite/step<N>/``:

- ``batch.pt``: the batch's tensors (input ids, masks, labels), its example ids, texts and
  sources, the step's loss terms and the random states from just before the forward pass
  (so dropout draws the same masks again);
- ``state.ckpt``: the model's weights as they were for that forward pass, with the optimizer and
  scheduler states and the hyper-parameters, in Lightning's checkpoint layout
  (``causalmine.checkpoints.load_module`` loads it).

Both load with ``torch.load(weights_only=True)``. :func:`replay_nonfinite` recomputes the loss.
The files are written by the failing process alone (no collective call), so a failure on one of
several devices cannot hang the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from causalmine.model.losses import LossBreakdown, LossWeights, unified_loss
from causalmine.rng import restore_rng_states


def nonfinite_dir(output_dir: str | Path, step: int, rank: int = 0, world_size: int = 1) -> Path:
    """``<output_dir>/nonfinite/step<N>`` (``-rank<r>`` appended on multi-device runs)."""
    suffix = f"-rank{rank}" if world_size > 1 else ""
    return Path(output_dir) / "nonfinite" / f"step{step}{suffix}"


def dump_nonfinite(
    directory: Path,
    batch: dict[str, Any],
    module: L.LightningModule,
    rng_states: dict[str, Any],
    losses: LossBreakdown,
) -> Path:
    """Save the batch, the random states and the model/optimizer state; return ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    examples = batch["meta"].examples
    trainer = module.trainer
    torch.save(
        {
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "example_ids": [e.id for e in examples],
            "texts": [e.text for e in examples],
            "sources": [e.source for e in examples],
            "tensors": {k: v.detach().cpu() for k, v in batch.items() if torch.is_tensor(v)},
            "losses": {
                name: float(getattr(losses, name).detach())
                for name in ("total", "seq", "span", "pair")
            },
            "rng_states": rng_states,
        },
        directory / "batch.pt",
    )
    torch.save(
        {
            "pytorch-lightning_version": L.__version__,
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "optimizer_states": [opt.state_dict() for opt in trainer.optimizers],
            "lr_schedulers": [c.scheduler.state_dict() for c in trainer.lr_scheduler_configs],
        },
        directory / "state.ckpt",
    )
    return directory


def replay_nonfinite(directory: str | Path) -> LossBreakdown:
    """Recompute the failing step's loss from what :func:`dump_nonfinite` saved (on the CPU)."""
    # imported here: checkpoints imports lit, which imports this module
    from causalmine.checkpoints import load_module

    directory = Path(directory)
    saved = torch.load(directory / "batch.pt", map_location="cpu", weights_only=True)
    module = load_module(directory / "state.ckpt").train()
    batch = dict(saved["tensors"])
    restore_rng_states(saved["rng_states"])
    out = module.network(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    weights = LossWeights(**(module.hparams.get("loss") or {}))
    return unified_loss(
        out.seq_logits, out.pair_logits, out.ce_logits, out.sig_logits, batch, weights
    )
