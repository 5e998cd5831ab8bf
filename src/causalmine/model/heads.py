"""Task heads: chained span taggers and binary classifiers."""

from __future__ import annotations

import torch
from torch import nn
from torchcrf import CRF

from causalmine.schema import TagTransitions


class SpanTagger(nn.Module):
    """One relation slot: Cause/Effect BIO logits and Signal BIO logits for every token, and
    with ``crf`` a linear-chain CRF over each layer's tags (the logits are its emissions)."""

    def __init__(
        self, in_dim: int, num_ce: int, num_sig: int, dropout: float, crf: bool = False
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # "ce" (cause/effect) and "sig" name the weights in every saved checkpoint and export
        self.ce = nn.Linear(in_dim, num_ce)
        self.sig = nn.Linear(in_dim, num_sig)
        self.ce_crf = CRF(num_ce, batch_first=True) if crf else None
        self.sig_crf = CRF(num_sig, batch_first=True) if crf else None

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.dropout(features)
        return self.ce(x), self.sig(x)


class ChainedSpanHeads(nn.Module):
    """K span taggers; head k reads the token states and every earlier head's logits.

    Chaining lets head k see which spans the earlier heads took, so it can tag a different
    relation of the same sentence. Input size of head k: ``dim + (k-1) * (num_ce + num_sig)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_ce: int,
        num_sig: int,
        dropout: float,
        crf: bool = False,
    ) -> None:
        super().__init__()
        step = num_ce + num_sig
        self.heads = nn.ModuleList(
            SpanTagger(dim + k * step, num_ce, num_sig, dropout, crf) for k in range(num_heads)
        )

    @property
    def crfs(self) -> list[tuple[CRF, CRF]] | None:
        """Each head's cause/effect and signal CRFs (``model.span_crf``), else ``None``."""
        if self.heads[0].ce_crf is None:
            return None
        return [(head.ce_crf, head.sig_crf) for head in self.heads]

    def transitions(self) -> tuple[TagTransitions, TagTransitions] | None:
        """The CRFs' transition scores for decoding, cause/effect then signal, stacked over
        heads (detached, on the CPU); ``None`` without CRFs."""
        crfs = self.crfs
        if crfs is None:
            return None

        def stacked(layer: int) -> TagTransitions:
            return TagTransitions(
                *(
                    torch.stack([getattr(pair[layer], name) for pair in crfs])
                    .detach()
                    .float()
                    .cpu()
                    for name in ("start_transitions", "transitions", "end_transitions")
                )
            )

        return stacked(0), stacked(1)

    def forward(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``cause_effect_logits [batch, K, tokens, num_ce]`` and ``signal_logits [batch, K, tokens, num_sig]``."""
        features = states
        ce_all, sig_all = [], []
        for head in self.heads:
            ce, sig = head(features)
            ce_all.append(ce)
            sig_all.append(sig)
            features = torch.cat([features, ce, sig], dim=-1)
        return torch.stack(ce_all, 1), torch.stack(sig_all, 1)


class ClassificationHead(nn.Module):
    """Dropout + linear over the pooled representation (two logits: not causal, causal)."""

    def __init__(self, dim: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(dim, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(pooled))
