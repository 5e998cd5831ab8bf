"""Backbones: the bundled MiniLM, tiny models, and a fast, helpful failure for hub names offline."""

from __future__ import annotations

import pytest

from causalmine.model import backbone, hub
from causalmine.model.backbone import (
    BackboneSpec,
    BackboneUnavailable,
    load_tokenizer,
    resolve_name_or_path,
)


def test_bundled_minilm_resolves_to_the_package():
    path = resolve_name_or_path("sentence-transformers/all-MiniLM-L6-v2")
    assert path == backbone.bundled_minilm_path()
    assert (backbone.Path(path) / "model.safetensors").is_file()


def test_local_directory_is_used_as_is(tmp_path):
    assert resolve_name_or_path(str(tmp_path)) == str(tmp_path)


def test_hub_name_offline_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setattr(hub, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(hub, "_in_hub_cache", lambda repo: False)
    with pytest.raises(BackboneUnavailable) as err:
        resolve_name_or_path("roberta-base")
    message = str(err.value)
    assert (
        "'roberta-base'" in message
        and "model.name_or_path=DIR" in message
        and "model=minilm" in message
    )


def test_hf_hub_offline_is_respected(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_in_hub_cache", lambda repo: False)
    with pytest.raises(BackboneUnavailable, match="HF_HUB_OFFLINE"):
        resolve_name_or_path("bert-base-cased")


def test_tiny_tokenizers_are_deterministic():
    a = load_tokenizer(BackboneSpec("t", {"arch": "roberta"}))
    backbone._tiny_vocabulary.cache_clear()
    b = load_tokenizer(BackboneSpec("t", {"arch": "roberta"}))
    assert a.get_vocab() == b.get_vocab()


def test_unknown_tiny_arch_is_rejected():
    with pytest.raises(ValueError, match=r"model\.tiny\.arch"):
        BackboneSpec("t", {"arch": "gpt2"})
