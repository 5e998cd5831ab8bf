"""One way between a saved model and a predictor: a training checkpoint, an export directory or
a Hugging Face Hub repository of an export, all read into the same :class:`ModelBundle`, which
writes and shares itself the way Hugging Face models do (``save_pretrained``,
``from_pretrained``, ``push_to_hub``).

A bundle is everything prediction needs: the network, its tokenizer and its export config (the
window it was trained with, its decoding settings: method, required span kinds,
``force_relation``, ``relation_order``), plus what its model card shows (training settings,
test figures).

An export directory::

    model.safetensors   the network's weights (no pickle)
    config.json         network options, backbone config, label maps, decoding, training, test figures
    tokenizer/          the tokenizer files (added marker tokens included)
    README.md           the model card
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from causalmine.checkpoints import load_module
from causalmine.inference.predictor import Predictor
from causalmine.lit import CausalLitModule
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.network import CausalNetwork, NetworkConfig
from causalmine.schema import CE_LABELS, SIG_LABELS
from causalmine.settings import (
    DEFAULT_DECODE_METHOD,
    DEFAULT_RELATION_ORDER,
    DEFAULT_REQUIRED_KINDS,
)

FORMAT = "causalmine-model"
FORMAT_VERSION = 1
DEFAULT_MAX_LENGTH = 256
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class ModelBundle:
    """A trained network with what it needs to read new text the way it was trained."""

    network: CausalNetwork
    tokenizer: PreTrainedTokenizerBase
    config: dict[str, Any]  # the export config (config.json)
    source: str = ""  # where it was loaded from
    metrics: dict[str, Any] = field(default_factory=dict)  # the run's test figures, for the card

    @property
    def max_length(self) -> int:
        return self.config["max_length"]

    @property
    def decode_method(self) -> str:
        return self.config["decode"].get("method", DEFAULT_DECODE_METHOD)  # older exports: argmax

    @property
    def required_kinds(self) -> tuple[str, ...]:
        return tuple(self.config["decode"].get("required_kinds", DEFAULT_REQUIRED_KINDS))

    @property
    def force_relation(self) -> bool:
        return bool(self.config["decode"].get("force_relation", False))

    @property
    def relation_order(self) -> str:
        return self.config["decode"].get("relation_order", DEFAULT_RELATION_ORDER)

    def predictor(self, device: str | torch.device = "cpu", **options: Any) -> Predictor:
        """A :class:`Predictor` with the bundle's settings; ``options`` override any of them."""
        settings: dict[str, Any] = {
            "max_length": self.max_length,
            "decode_method": self.decode_method,
            "required_kinds": self.required_kinds,
            "force_relation": self.force_relation,
            "relation_order": self.relation_order,
        }
        settings.update(options)
        return Predictor(self.network, self.tokenizer, device=device, **settings)

    @classmethod
    def from_pretrained(cls, source: str | Path) -> ModelBundle:
        """The bundle of a ``.ckpt``, an export directory or a Hub id (see :func:`load_bundle`)."""
        return load_bundle(source)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the bundle as an export directory (weights, config, tokenizer, model card)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, str(out / "model.safetensors"), metadata={"format": FORMAT})
        config = {**self.config, "test_metrics": _test_metrics(self.metrics)}
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        self.tokenizer.save_pretrained(str(out / "tokenizer"))
        (out / "README.md").write_text(model_card(config))
        return out

    def push_to_hub(self, repo_id: str, private: bool = False) -> str:
        """Save to a temporary directory and upload it to a Hub model repository."""
        with tempfile.TemporaryDirectory() as tmp:
            return push_folder(self.save_pretrained(Path(tmp) / "model"), repo_id, private)


def export_config(hparams: dict[str, Any], source_checkpoint: str) -> dict[str, Any]:
    """The export config of a training module's hyper-parameters."""
    training = {k: hparams.get(k) for k in ("data_config", "loss", "optim", "freeze", "corpora")}
    # where the corpora sat on the training machine means nothing to a reader of the card
    training["data_config"] = {
        k: v for k, v in (training["data_config"] or {}).items() if k not in ("root", "num_workers")
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": hparams["network"],
        "backbone_config": hparams["backbone_config"],
        "labels": {
            "sequence": ["not causal", "causal"],
            "cause_effect": list(CE_LABELS),
            "signal": list(SIG_LABELS),
        },
        "max_length": (hparams.get("data_config") or {}).get("max_length", DEFAULT_MAX_LENGTH),
        # checkpoints from before decode.method decode with argmax
        "decode": {"method": DEFAULT_DECODE_METHOD, **(hparams.get("decode") or {})},
        "source_checkpoint": source_checkpoint,
        "training": training,
    }


def bundle_of_module(module: CausalLitModule, source: str = "") -> ModelBundle:
    """The bundle of a loaded training module (its tokenizer rebuilt from the backbone spec;
    its test figures from the run's ``metrics.json`` when the checkpoint sits in its run)."""
    network = module.hparams["network"]
    config = export_config(dict(module.hparams), source)
    # eval.py may have changed the module's decoding: the bundle decodes as the module does
    config["decode"] = {
        **config["decode"],
        "method": module.decode_method,
        "required_kinds": list(module.required_kinds),
        "force_relation": module.force_relation,
        "relation_order": module.relation_order,
    }
    return ModelBundle(
        network=module.network,
        tokenizer=load_tokenizer(BackboneSpec(network["name_or_path"], network.get("tiny"))),
        config=config,
        source=source,
        metrics=_run_metrics(Path(source)) if source else {},
    )


def load_bundle(source: str | Path) -> ModelBundle:
    """A bundle from a training checkpoint (``.ckpt``), an export directory (written by
    ``python -m causalmine.export`` or :meth:`ModelBundle.save_pretrained`) or a Hub repository
    id (``owner/name``) holding one."""
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
    tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))
    metrics = config.pop("test_metrics", None) or {}
    return ModelBundle(network, tokenizer, config, source, metrics)


def _run_metrics(ckpt_path: Path) -> dict[str, Any]:
    """The ``metrics.json`` of the run the checkpoint comes from, when it is beside it."""
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        if (folder / "metrics.json").is_file():
            return json.loads((folder / "metrics.json").read_text())
    return {}


def _test_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: v
        for k, v in sorted(metrics.items())
        if k.startswith("test/") and k.count("/") == 1 and isinstance(v, float)
    }


def push_folder(directory: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export directory to a Hub model repository (created if missing); its URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    read_export_config(directory)  # refuse to upload anything but an export
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=str(directory), commit_message="causalmine export"
    )
    return str(getattr(commit, "commit_url", commit))


def model_card(config: dict[str, Any]) -> str:
    """A Hub model card: metadata, what the model does, its training data and settings, its
    test figures, how to use it."""

    training = config.get("training") or {}
    settings = yaml.safe_dump(
        {k: v for k, v in training.items() if v}, sort_keys=False, width=100
    ).strip()
    network = config["network"]
    scores = [
        f"| {key.removeprefix('test/')} | {value:.4f} |"
        for key, value in (config.get("test_metrics") or {}).items()
    ]
    table = (
        "| metric (the training run's test split) | value |\n| --- | ---: |\n" + "\n".join(scores)
        if scores
        else "No test figures were beside the checkpoint when it was exported."
    )
    return f"""---
library_name: causalmine
base_model: {network["name_or_path"]}
tags:
- causal-text-mining
- token-classification
- text-classification
language: en
---

# causalmine model ({network["name_or_path"]})

One causalmine network that reads a sentence and
tells whether it is causal, extracts up to {network["span_heads"]} cause–effect relations with
their Cause, Effect and Signal spans, and classifies marked `<ARG0>…</ARG0> <ARG1>…</ARG1>` pairs.
Backbone `{network["name_or_path"]}`, pooling `{network.get("pooling", "cls")}`, window
{config["max_length"]} subwords, spans decoded with `{config["decode"].get("method")}`.

## Training

Corpora: {", ".join(training.get("corpora") or []) or "see below"}. The settings it was
trained with (data, loss weights, optimizer, freezing):

```yaml
{settings}
```

## Scores

{table}

## Use

```python
import causalmine

predictor = causalmine.load("THIS_DIRECTORY_OR_HUB_ID")
for p in predictor.predict(["Prices rose because supply fell ."]):
    print(p.to_json())
```

or mine a document collection: `python mine.py model_dir=THIS_DIRECTORY_OR_HUB_ID input=DIR output=DIR`.
Files: `model.safetensors` (weights), `config.json` (format `{FORMAT}` v{config["format_version"]}),
`tokenizer/`. Exported from `{Path(config.get("source_checkpoint") or "?").name}`.
"""
