"""Evaluate a checkpoint: python eval.py ckpt_path=PATH [split=val]  (see README)."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from causalmine.config import register_with_hydra
from causalmine.entry import check_override_keys, friendly_errors
from causalmine.recipes import evaluate

register_with_hydra()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@friendly_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    check_override_keys(sys.argv[1:], Path(__file__).parent / "conf", "eval")
    main()
