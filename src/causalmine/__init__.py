"""causalmine: one unified network for causal text mining (sequence, span and pair tasks).

>>> import causalmine
>>> predictor = causalmine.load("exported_model_dir")       # doctest: +SKIP
>>> next(predictor.predict(["Prices rose because supply fell ."])).to_json()   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from causalmine.inference import Predictor


def load(model_dir: str, device: str = "cpu", **predictor_options: Any) -> Predictor:
    """Load an exported model directory (see :mod:`causalmine.export`) as a ``Predictor``."""
    from causalmine.export import load as _load

    return _load(model_dir, device=device, **predictor_options)
