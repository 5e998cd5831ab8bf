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


def load(source: str, device: str = "cpu", **predictor_options: Any) -> Predictor:
    """A ``Predictor`` from an exported model directory (see :mod:`causalmine.export`), a
    training checkpoint (``.ckpt``) or a Hugging Face Hub id (``owner/name``) of an export."""
    from causalmine.inference.bundle import load_bundle

    return load_bundle(source).predictor(device, **predictor_options)
