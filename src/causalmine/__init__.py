"""causalmine: one unified network for causal text mining (sequence, span and pair tasks)."""

__version__ = "0.1.0"
