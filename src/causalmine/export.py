"""Self-contained model directories, from the command line.

``python -m causalmine.export ckpt_path=CKPT out=DIR [push_to_hub=owner/name]`` writes::

    DIR/model.safetensors   the network's weights (no pickle)
    DIR/config.json         network options, backbone config, label maps, decoding, training, test figures
    DIR/tokenizer/          the tokenizer files (added marker tokens included)
    DIR/README.md           the model card (what it is, how it was trained, its scores, how to use it)

and with ``push_to_hub`` uploads the directory to that Hugging Face Hub repository. The format
and the loading live in :mod:`causalmine.inference.bundle`; :func:`load` (also
``causalmine.load``) reads a directory, a checkpoint or a Hub id back into a predictor.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from causalmine.inference.bundle import load_bundle, push_folder
from causalmine.inference.predictor import Predictor


def export(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """Write the model of a training checkpoint as a self-contained directory."""
    return load_bundle(Path(ckpt_path)).save_pretrained(out_dir)


def load(
    source: str | Path, device: str | torch.device = "cpu", **predictor_options: Any
) -> Predictor:
    """A :class:`Predictor` from an export directory, a training checkpoint or a Hub id."""
    return load_bundle(source).predictor(device, **predictor_options)


def push_to_hub(model_dir: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export directory to a Hub model repository (created if missing); its URL."""
    return push_folder(model_dir, repo_id, private)


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
