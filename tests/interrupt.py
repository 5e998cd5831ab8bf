"""Callbacks that stop a training run at a chosen step: one freezes it there, for a test to
SIGKILL it; the other SIGKILLs it itself.

Used through Hydra by the subprocess in ``test_reliability``:
``+callbacks.pause._target_=tests.interrupt.PauseAtStep +callbacks.pause.step=N +callbacks.pause.marker=FILE``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L


class PauseAtStep(L.Callback):
    """Before training step ``step`` (so after the checkpoints of step ``step``-1 and earlier are
    written), create ``marker`` and sleep until the process is killed."""

    def __init__(self, step: int, marker: str) -> None:
        self.step = step
        self.marker = Path(marker)

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            self.marker.write_text(str(trainer.global_step))
            while True:
                time.sleep(1)


class KillAtStep(L.Callback):
    """Before training step ``step``, SIGKILL this very process, once: the kill leaves ``marker``
    behind, and a run that finds it (the resumed one, or one meant never to stop) trains on."""

    def __init__(self, step: int, marker: str) -> None:
        self.step = step
        self.marker = Path(marker)

    def kill_once(self, where: str) -> None:
        if not self.marker.exists():
            self.marker.write_text(where)
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            self.kill_once(str(trainer.global_step))


class KillAtTest(KillAtStep):
    """SIGKILL this very process as its test starts, once (after the whole fit and its last
    checkpoint): the resumed run has nothing left to train."""

    def __init__(self, marker: str) -> None:
        super().__init__(step=-1, marker=marker)  # no training step is -1

    def on_test_start(self, trainer: L.Trainer, *args: object) -> None:
        self.kill_once("test")
