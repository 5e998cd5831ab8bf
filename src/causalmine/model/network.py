"""The unified causal network (one ``nn.Module``)::

input ids ─► backbone ─► dropout ─► BiLSTM reader (optional)           = token states h
h ─► span head 1 ─► [h; logits_1] ─► span head 2 ─► …                   K chained heads
                                                    (with model.span_crf, a CRF over each head's tags)
h ─► pooling (cls | mean | pooler) ─► sequence head, pair head
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from causalmine.model.backbone import BackboneSpec, load_backbone
from causalmine.model.heads import ChainedSpanHeads, ClassificationHead
from causalmine.model.pooling import Pooling
from causalmine.schema import CE_LABELS, SIG_LABELS
from causalmine.settings import NetworkConfig


@dataclass
class NetworkOutput:
    """Logits of every task for one batch."""

    seq_logits: torch.Tensor  # [batch, 2]
    pair_logits: torch.Tensor  # [batch, 2]
    cause_effect_logits: torch.Tensor  # [batch, K, tokens, 5]  Cause/Effect BIO
    signal_logits: torch.Tensor  # [batch, K, tokens, 3]  Signal BIO
    pooled: torch.Tensor  # [batch, dim]


class CausalNetwork(nn.Module):
    """Backbone + optional BiLSTM + K chained span heads + pooled sequence and pair heads."""

    def __init__(
        self, config: NetworkConfig, backbone_config: PretrainedConfig | None = None
    ) -> None:
        """Build the network; with ``backbone_config`` the backbone is built from it (random
        weights, to be filled by a state dict) instead of being downloaded or loaded."""
        super().__init__()
        self.config = config
        spec = BackboneSpec(config.name_or_path, config.tiny)
        if backbone_config is not None:
            from transformers import AutoModel

            self.backbone: PreTrainedModel = AutoModel.from_config(backbone_config)
            has_pretrained_pooler = False  # the state dict that follows carries the pooling weights
        else:
            self.backbone, has_pretrained_pooler = load_backbone(spec, config.vocab_size or 0)
        if (
            config.vocab_size
            and self.backbone.get_input_embeddings().num_embeddings != config.vocab_size
        ):
            self.backbone.resize_token_embeddings(config.vocab_size, mean_resizing=True)
        if config.gradient_checkpointing:
            self.backbone.gradient_checkpointing_enable({"use_reentrant": False})
        hidden = self.backbone.config.hidden_size

        pretrained_dense = (
            getattr(getattr(self.backbone, "pooler", None), "dense", None)
            if has_pretrained_pooler
            else None
        )
        if getattr(self.backbone, "pooler", None) is not None:
            # The pooling layer owns its own copy; an unused backbone pooler would also be an
            # "unused parameter" under DDP.
            self.backbone.pooler = None
        self.dropout = nn.Dropout(config.dropout)
        self.lstm: nn.LSTM | None = None
        dim = hidden
        if config.lstm.enabled:
            self.lstm = nn.LSTM(
                hidden,
                config.lstm.hidden,
                num_layers=config.lstm.layers,
                batch_first=True,
                bidirectional=True,
                dropout=config.lstm.dropout if config.lstm.layers > 1 else 0.0,
            )
            dim = 2 * config.lstm.hidden
        self.span_heads = ChainedSpanHeads(
            dim,
            config.span_heads,
            len(CE_LABELS),
            len(SIG_LABELS),
            config.head_dropout,
            config.span_crf,
        )
        # the pretrained pooler reads backbone states; cls/mean read the (possibly LSTM) states
        pooled_dim = hidden if config.pooling == "pooler" else dim
        self.pooling = Pooling(config.pooling, pooled_dim, pretrained_dense)
        self.seq_head = ClassificationHead(pooled_dim, 2, config.head_dropout)
        self.pair_head = ClassificationHead(pooled_dim, 2, config.head_dropout)
        self.train()  # from_pretrained returns the backbone in eval mode (dropout off)

    def _read(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The BiLSTM over each row's real tokens (packed), in fp32 under autocast.

        With the LSTM under bf16 autocast the whole network trained 3-5x slower than fp32 on
        an H200 (RESULTS §11), so the reader leaves autocast and the backbone and heads keep
        it. Without autocast the states keep their dtype (an fp32, bf16 or int8 network).
        """
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        if torch.is_autocast_enabled(states.device.type):
            states = states.float()
        with torch.autocast(states.device.type, enabled=False):
            packed = nn.utils.rnn.pack_padded_sequence(
                states, lengths, batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            read, _ = nn.utils.rnn.pad_packed_sequence(
                out, batch_first=True, total_length=states.shape[1]
            )
        return read

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> NetworkOutput:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        backbone_states = self.backbone(**kwargs).last_hidden_state
        states = self.dropout(backbone_states)
        if self.lstm is not None:
            states = self._read(states, attention_mask)
        cause_effect_logits, signal_logits = self.span_heads(states)
        pool_input = backbone_states if self.config.pooling == "pooler" else states
        pooled = self.pooling(pool_input, attention_mask)
        return NetworkOutput(
            seq_logits=self.seq_head(pooled),
            pair_logits=self.pair_head(pooled),
            cause_effect_logits=cause_effect_logits,
            signal_logits=signal_logits,
            pooled=pooled,
        )
