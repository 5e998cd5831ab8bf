"""An exponential moving average of the weights (``callbacks=ema``): Lightning's
``EMAWeightAveraging``, with one fix for how this project tests.

Lightning's callback, on loading a checkpoint it wrote, puts the checkpoint's *trained* weights
(``current_model_state``) into the module whenever its averaged model exists, so that a resumed
fit goes on from them. Its averaged model exists from the fit's set-up on, so a test of the best
checkpoint after the fit on the same trainer (``trainer.test(ckpt_path=best)``, what ``train.py``
does with ``test_checkpoint=best``) scored the trained weights, not the averaged ones that
validation selected the checkpoint by. Here only a fit restores the trained weights; a test or
validation scores the checkpoint's ``state_dict``, the average. Lightning's callback also swaps
its averaged model into the module for any validation once a fit has made one, so a later
``trainer.validate(ckpt_path=X)`` on the same trainer scored the fit's last average, not X:
here only a fit's validation swaps.

And a fit resumed from the checkpoint of its last epoch (killed during its test) has nothing to
train: Lightning's fit loop then returns before ``on_train_end``, where the callback puts the
average into the module, so the test that follows scored the trained weights. Here the end of
every fit puts the average in.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """``EMAWeightAveraging`` whose loaded checkpoints are scored at their averaged weights
    outside a fit, whose average is swapped in only for a fit's validation, and whose every fit
    ends with the average in the module (see the module docstring); arguments as Lightning's."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after on_train_end (when it ran) this copies the same average again
        if self._average_model is not None:
            self._copy_average_to_current(pl_module)
