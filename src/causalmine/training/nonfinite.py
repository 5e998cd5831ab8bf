"""The non-finite guard: a NaN or infinite training loss stops the run and leaves its evidence.

When the loss of a training step is NaN or infinite, :class:`NonFiniteGuard` stops the run
before the backward pass with :class:`NonFiniteLossError`, and :func:`dump_nonfinite` writes into
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
from lightning.pytorch.callbacks import Callback

from causalmine.checkpoints import load_module
from causalmine.model.losses import LossBreakdown
from causalmine.precision import computing_as, run_numerics
from causalmine.training.rng import capture_rng_states, restore_rng_states


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class NonFiniteGuard(Callback):
    """Stops training at the first non-finite loss, after saving what is needed to replay it.

    The random states are captured when the batch starts, before dropout draws, so the replay
    gets the same masks. The module keeps the step's loss terms as ``last_losses``.
    """

    def __init__(self) -> None:
        self._batch: dict[str, Any] | None = None
        self._rng_states: dict[str, Any] | None = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch, self._rng_states = batch, capture_rng_states(torch_only=True)

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if torch.isfinite(loss):
            return
        losses: LossBreakdown = pl_module.last_losses
        saved = dump_nonfinite(
            nonfinite_dir(
                trainer.default_root_dir,
                trainer.global_step,
                trainer.global_rank,
                trainer.world_size,
            ),
            self._batch,
            pl_module,
            self._rng_states,
            losses,
        )
        ids = [e.id for e in self._batch["meta"].examples]
        raise NonFiniteLossError(
            f"non-finite training loss {losses.total.item()} at global step {trainer.global_step} "
            f"(seq {losses.seq.item()}, span {losses.span.item()}, pair {losses.pair.item()}); "
            f"batch example ids: {ids}. The batch, its random state and the model/optimizer "
            f'state are saved in {saved}; replay: python -c "from causalmine.training.nonfinite '
            f"import replay_nonfinite; print(replay_nonfinite('{saved}'))\""
        )


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
            "numerics": run_numerics(trainer.precision),
        },
        directory / "state.ckpt",
    )
    return directory


def replay_nonfinite(directory: str | Path) -> LossBreakdown:
    """Recompute the failing step's loss from what :func:`dump_nonfinite` saved (on the CPU),
    computing as the run did: bf16 autocast for a ``bf16-mixed`` run, its matmul precision.
    (A GPU run's fp16 step is replayed in fp32, so not bit for bit.)"""
    directory = Path(directory)
    saved = torch.load(directory / "batch.pt", map_location="cpu", weights_only=True)
    module = load_module(directory / "state.ckpt").train()
    batch = dict(saved["tensors"])
    restore_rng_states(saved["rng_states"])
    with computing_as(module.trained_numerics):
        out = module.network(
            batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids")
        )
        # weighed as the failing step's epoch was (a span warm-up leaves the sequence loss out)
        return module.compute_losses(out, batch, epoch=saved["epoch"])
