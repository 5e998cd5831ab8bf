"""Self-contained model directories: safetensors weights, a JSON config, the tokenizer, a card.

``python -m causalmine.export ckpt_path=CKPT out=DIR [push_to_hub=owner/name]`` writes::

    DIR/model.safetensors   the network's weights (no pickle)
    DIR/config.json         network options, backbone config, label maps, decoding settings
    DIR/tokenizer/          the tokenizer files (added marker tokens included)
    DIR/README.md           the model card (what it is, its scores, how to use it)

and with ``push_to_hub`` uploads the directory to that Hugging Face Hub repository.
:func:`load` (also ``causalmine.load``) reads a directory, a checkpoint or a Hub id back into a
:class:`~causalmine.inference.predictor.Predictor` (see :mod:`causalmine.inference.bundle`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from causalmine.checkpoints import load_module
from causalmine.inference.bundle import (
    DEFAULT_MAX_LENGTH,
    FORMAT,
    FORMAT_VERSION,
    load_bundle,
    read_export_config,
)
from causalmine.inference.predictor import Predictor
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.schema import CE_LABELS, SIG_LABELS
from causalmine.scoring.decode import DEFAULT_METHOD


def export(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """Write the model of a training checkpoint as a self-contained directory."""
    module = load_module(ckpt_path)
    hparams = module.hparams
    network = hparams["network"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in module.network.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": FORMAT})
    config: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "network": network,
        "backbone_config": hparams["backbone_config"],
        "labels": {
            "sequence": ["not causal", "causal"],
            "cause_effect": list(CE_LABELS),
            "signal": list(SIG_LABELS),
        },
        "max_length": (hparams.get("data_config") or {}).get("max_length", DEFAULT_MAX_LENGTH),
        # checkpoints from before decode.method decode with argmax
        "decode": {"method": DEFAULT_METHOD, **(hparams.get("decode") or {})},
        "source_checkpoint": str(ckpt_path),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer = load_tokenizer(BackboneSpec(network["name_or_path"], network.get("tiny")))
    tokenizer.save_pretrained(str(out / "tokenizer"))
    training = {k: hparams.get(k) for k in ("data_config", "loss", "optim", "freeze", "corpora")}
    # where the corpora sat on the training machine means nothing to a reader of the card
    training["data_config"] = {
        k: v for k, v in (training["data_config"] or {}).items() if k not in ("root", "num_workers")
    }
    (out / "README.md").write_text(model_card(config, _run_metrics(Path(ckpt_path)), training))
    return out


def load(
    source: str | Path, device: str | torch.device = "cpu", **predictor_options: Any
) -> Predictor:
    """A :class:`Predictor` from an export directory, a training checkpoint or a Hub id."""
    return load_bundle(source).predictor(device, **predictor_options)


def _run_metrics(ckpt_path: Path) -> dict[str, Any]:
    """The ``metrics.json`` of the run the checkpoint comes from, when it is beside it."""
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        if (folder / "metrics.json").is_file():
            return json.loads((folder / "metrics.json").read_text())
    return {}


def model_card(
    config: dict[str, Any], metrics: dict[str, Any], training: dict[str, Any] | None = None
) -> str:
    """A Hub model card: metadata, what the model does, its training data and settings, its
    test figures, how to use it."""
    import yaml

    settings = yaml.safe_dump(
        {k: v for k, v in (training or {}).items() if v}, sort_keys=False, width=100
    ).strip()
    network = config["network"]
    scores = [
        f"| {key.removeprefix('test/')} | {value:.4f} |"
        for key, value in sorted(metrics.items())
        if key.startswith("test/") and key.count("/") == 1 and isinstance(value, float)
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

Corpora: {", ".join((training or {}).get("corpora") or []) or "see below"}. The settings it was
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
`tokenizer/`. Exported from `{Path(config["source_checkpoint"]).name}`.
"""


def push_to_hub(model_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export directory to a Hub model repository (created if missing); its URL."""
    from huggingface_hub import HfApi

    directory = Path(model_dir)
    read_export_config(directory)  # refuse to upload anything but an export
    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id, folder_path=str(directory), commit_message="causalmine export"
    )
    return str(getattr(commit, "commit_url", commit))


def _parse_args(argv: list[str]) -> dict[str, str]:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    if not {"ckpt_path", "out"} <= set(args) <= {"ckpt_path", "out", "push_to_hub"} or len(
        argv
    ) != len(args):
        raise SystemExit(
            "usage: python -m causalmine.export ckpt_path=PATH/TO/best.ckpt out=DIR "
            "[push_to_hub=owner/name]"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    out = export(args["ckpt_path"], args["out"])
    print(f"exported {args['ckpt_path']} to {out}")
    if args.get("push_to_hub"):
        print(f"pushed to {push_to_hub(out, args['push_to_hub'])}")


if __name__ == "__main__":
    main()
