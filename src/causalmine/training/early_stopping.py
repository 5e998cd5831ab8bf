"""Early stopping (``callbacks=early_stopping``) that a resume does not undo.

Lightning's ``EarlyStopping`` restores its counters from a checkpoint but not the trainer's
``should_stop`` flag that it raised. So a run that stopped early and was killed after its last
checkpoint (during its test, say), when resumed with ``ckpt_path=last``, trained on to
``max_epochs``: not the run it resumed. Here a restored state that says training stopped stops
the resumed fit before its first step.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason


class ResumableEarlyStopping(EarlyStopping):
    """``EarlyStopping`` whose stop survives a resume (see the module docstring); arguments as
    Lightning's."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the checkpoint's callback states are restored before on_fit_start, the loop runs after
        # (under DDP a rank stopped by another rank's decision keeps no reason, only the epoch)
        if self.stopping_reason != EarlyStoppingReason.NOT_STOPPED or self.stopped_epoch > 0:
            trainer.should_stop = True
        super().on_fit_start(trainer, pl_module)
