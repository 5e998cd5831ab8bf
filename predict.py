"""Predict causal labels and relations for new text: python predict.py ckpt_path=… input=FILE  (see README)."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from causalmine.config import register_with_hydra
from causalmine.entry import check_override_keys, friendly_errors
from causalmine.recipes import predict

register_with_hydra()


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@friendly_errors
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    check_override_keys(sys.argv[1:], Path(__file__).parent / "conf", "predict")
    main()
