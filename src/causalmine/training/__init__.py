"""What keeps a training run honest, as Lightning callbacks: exact resume after a kill, the
non-finite loss guard, gradual unfreezing (and the parameter counts it leaves).
``training_callbacks()`` is what every fit needs."""

from lightning.pytorch.callbacks import Callback

from causalmine.training.freezing import GradualUnfreezing, ParameterCounts
from causalmine.training.nonfinite import NonFiniteGuard, NonFiniteLossError
from causalmine.training.resume import ExactResume

__all__ = [
    "ExactResume",
    "GradualUnfreezing",
    "NonFiniteGuard",
    "NonFiniteLossError",
    "ParameterCounts",
    "training_callbacks",
]


def training_callbacks() -> list[Callback]:
    """The callbacks every fit of :class:`~causalmine.lit.CausalLitModule` runs with."""
    return [ParameterCounts(), NonFiniteGuard(), GradualUnfreezing(), ExactResume()]
