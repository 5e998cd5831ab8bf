"""One way from a saved model to a predictor: a training checkpoint, an export directory or a
Hugging Face Hub repository of an export, all read into the same :class:`ModelBundle`.

A bundle is everything prediction needs: the network, its tokenizer, the window it was trained
with, and its decoding settings (method, required span kinds, ``force_relation``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from causalmine.checkpoints import load_module
from causalmine.inference.predictor import Predictor
from causalmine.lit import CausalLitModule
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.network import CausalNetwork, NetworkConfig
from causalmine.scoring.decode import DEFAULT_METHOD, DEFAULT_REQUIRED_KINDS

FORMAT = "causalmine-model"
FORMAT_VERSION = 1
DEFAULT_MAX_LENGTH = 256
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class ModelBundle:
    """A trained network with what it needs to read new text the way it was trained."""

    network: CausalNetwork
    tokenizer: PreTrainedTokenizerBase
    max_length: int
    decode_method: str
    required_kinds: tuple[str, ...]
    force_relation: bool
    source: str  # where it was loaded from

    def predictor(self, device: str | torch.device = "cpu", **options: Any) -> Predictor:
        """A :class:`Predictor` with the bundle's settings; ``options`` override any of them."""
        settings: dict[str, Any] = {
            "max_length": self.max_length,
            "decode_method": self.decode_method,
            "required_kinds": self.required_kinds,
            "force_relation": self.force_relation,
        }
        settings.update(options)
        return Predictor(self.network, self.tokenizer, device=device, **settings)


def bundle_of_module(module: CausalLitModule, source: str = "") -> ModelBundle:
    """The bundle of a loaded training module (its tokenizer rebuilt from the backbone spec)."""
    network = module.hparams["network"]
    return ModelBundle(
        network=module.network,
        tokenizer=load_tokenizer(BackboneSpec(network["name_or_path"], network.get("tiny"))),
        max_length=(module.hparams.get("data_config") or {}).get("max_length", DEFAULT_MAX_LENGTH),
        decode_method=module.decode_method,
        required_kinds=module.required_kinds,
        force_relation=module.force_relation,
        source=source,
    )


def load_bundle(source: str | Path) -> ModelBundle:
    """A bundle from a training checkpoint (``.ckpt``), an export directory (written by
    ``python -m causalmine.export``) or a Hub repository id (``owner/name``) holding one."""
    path = Path(source)
    if path.is_file():
        return bundle_of_module(load_module(path), str(path))
    if path.is_dir():
        return _from_export(path, str(path))
    if isinstance(source, str) and _REPO_ID.match(source):
        return _from_export(_download(source), source)
    raise FileNotFoundError(
        f"{source}: no such checkpoint file or model directory (nor a Hub id owner/name)"
    )


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise FileNotFoundError(
            f"{repo_id}: not a local path, and the Hugging Face Hub repository could not be "
            f"fetched ({type(err).__name__}); offline, pass the directory of a downloaded copy"
        ) from None


def read_export_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of an export directory, checked to be one."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{directory}: no config.json; is this a directory written by causalmine.export?"
        )
    config = json.loads(config_path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(
            f"{config_path}: not a causalmine model directory (format {config.get('format')!r})"
        )
    return config


def _from_export(directory: Path, source: str) -> ModelBundle:
    config = read_export_config(directory)
    settings = dict(config["backbone_config"])
    backbone_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    network = CausalNetwork(NetworkConfig(**config["network"]), backbone_config)
    network.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    decode = config["decode"]
    return ModelBundle(
        network=network,
        tokenizer=AutoTokenizer.from_pretrained(str(directory / "tokenizer")),
        max_length=config["max_length"],
        decode_method=decode.get("method", DEFAULT_METHOD),  # older exports: argmax
        required_kinds=tuple(decode.get("required_kinds", DEFAULT_REQUIRED_KINDS)),
        force_relation=bool(decode.get("force_relation", False)),
        source=source,
    )
