"""Self-contained model directories: safetensors weights, a JSON config, the tokenizer.

``python -m causalmine.export ckpt_path=CKPT out=DIR`` writes::

    DIR/model.safetensors   the network's weights (no pickle)
    DIR/config.json         network options, backbone config, label maps, decoding settings
    DIR/tokenizer/          the tokenizer files (added marker tokens included)

:func:`load` (also ``causalmine.load``) turns such a directory back into a
:class:`~causalmine.inference.predictor.Predictor` without Hydra, checkpoints or unpickling.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer

from causalmine.inference import Predictor
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.network import CausalNetwork, NetworkConfig
from causalmine.schema import CE_LABELS, SIG_LABELS
from causalmine.scoring.decode import DEFAULT_METHOD, DEFAULT_REQUIRED_KINDS

FORMAT = "causalmine-model"
FORMAT_VERSION = 1


def export(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """Write the model of a training checkpoint as a self-contained directory."""
    from causalmine.checkpoints import load_module

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
        "max_length": (hparams.get("data_config") or {}).get("max_length", 256),
        # checkpoints from before decode.method decode with argmax
        "decode": {"method": DEFAULT_METHOD, **(hparams.get("decode") or {})},
        "source_checkpoint": str(ckpt_path),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer = load_tokenizer(BackboneSpec(network["name_or_path"], network.get("tiny")))
    tokenizer.save_pretrained(str(out / "tokenizer"))
    return out


def load(
    model_dir: str | Path, device: str | torch.device = "cpu", **predictor_options: Any
) -> Predictor:
    """A :class:`Predictor` from an exported directory (safetensors + JSON only)."""
    directory = Path(model_dir)
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
    settings = dict(config["backbone_config"])
    backbone_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    network = CausalNetwork(NetworkConfig(**config["network"]), backbone_config)
    network.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(str(directory / "tokenizer"))
    options = {
        "max_length": config["max_length"],
        "required_kinds": tuple(config["decode"].get("required_kinds", DEFAULT_REQUIRED_KINDS)),
        "decode_method": config["decode"].get("method", DEFAULT_METHOD),  # older exports: argmax
        "force_relation": bool(config["decode"].get("force_relation", False)),
    }
    return Predictor(network, tokenizer, device=device, **{**options, **predictor_options})


def _parse_args(argv: list[str]) -> dict[str, str]:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    if set(args) != {"ckpt_path", "out"} or len(argv) != 2:
        raise SystemExit("usage: python -m causalmine.export ckpt_path=PATH/TO/best.ckpt out=DIR")
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    out = export(args["ckpt_path"], args["out"])
    print(f"exported {args['ckpt_path']} to {out}")


if __name__ == "__main__":
    main()
