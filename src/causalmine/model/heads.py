"""Task heads: chained span taggers and binary classifiers."""

from __future__ import annotations

import torch
from torch import nn

from causalmine.schema import TagTransitions


class TagChain(nn.Module):
    """The learned scores of a linear-chain CRF over one BIO layer's tags: ``start[j]`` (the
    first word is j), ``step[i, j]`` (a word tagged i, the next j) and ``end[j]``; the head's
    logits are its emissions. The likelihood is :func:`causalmine.model.losses.crf_negative_log_likelihood`."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        # small random scores, as pytorch-crf starts
        self.start = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))
        self.step = nn.Parameter(torch.empty(num_labels, num_labels).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_labels).uniform_(-0.1, 0.1))


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
        self.ce_crf = TagChain(num_ce) if crf else None
        self.sig_crf = TagChain(num_sig) if crf else None

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

    def crf_scores(self) -> tuple[TagTransitions, TagTransitions] | None:
        """With CRFs (``model.span_crf``), their scores stacked over heads, cause/effect then
        signal (``start [K, labels]``, ``step [K, labels, labels]``, ``end [K, labels]``, in
        the graph: the loss trains them); ``None`` without."""
        if self.heads[0].ce_crf is None:
            return None

        def stacked(layer: str) -> TagTransitions:
            chains = [getattr(head, layer) for head in self.heads]
            return TagTransitions(
                *(
                    torch.stack([getattr(c, part) for c in chains])
                    for part in TagTransitions._fields
                )
            )

        return stacked("ce_crf"), stacked("sig_crf")

    def transitions(self) -> tuple[TagTransitions, TagTransitions] | None:
        """:meth:`crf_scores` for decoding: detached, float, on the CPU."""
        scores = self.crf_scores()
        if scores is None:
            return None
        return tuple(  # type: ignore[return-value]
            TagTransitions(*(t.detach().float().cpu() for t in layer)) for layer in scores
        )

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
