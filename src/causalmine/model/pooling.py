"""Sentence representation for the sequence and pair heads: ``cls``, ``mean`` or ``pooler``."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class Pooling(nn.Module):
    """Pool token states ``[batch, tokens, dim]`` into ``[batch, dim]``.

    - ``cls``: the first token's state.
    - ``mean``: the mean over real tokens (attention mask), padding excluded.
    - ``pooler``: dense + tanh over the first token, initialised from the backbone's
      pretrained pooler when it has one (BERT, RoBERTa…); otherwise fresh, which is logged.
    """

    def __init__(self, mode: str, dim: int, pretrained_dense: nn.Linear | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.dense: nn.Linear | None = None
        if mode == "pooler":
            self.dense = nn.Linear(dim, dim)
            if (
                pretrained_dense is not None
                and pretrained_dense.weight.shape == self.dense.weight.shape
            ):
                self.dense.load_state_dict(pretrained_dense.state_dict())
            else:
                log.warning(
                    "pooling=pooler: the backbone has no pretrained pooler; using a fresh dense+tanh over the first token"
                )

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.mode == "mean":
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.mode == "cls":
            return states[:, 0]
        assert self.dense is not None
        return torch.tanh(self.dense(states[:, 0]))
