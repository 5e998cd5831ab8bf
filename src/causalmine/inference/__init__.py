"""Inference: a trained network applied to new text (sentences, then whole document collections).

``predictor`` turns sentences into predictions; ``documents`` reads collections lazily,
``sentences`` splits documents with character offsets, and ``mining`` runs them together in
resumable shards (on one process or on Ray).
"""

from causalmine.inference.predictor import Predictor, SentencePrediction

__all__ = ["Predictor", "SentencePrediction"]
