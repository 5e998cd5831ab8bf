"""Train the unified causal model: python train.py [overrides]  (see README)."""

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from causalmine.config import plain_experiment_override, register_with_hydra
from causalmine.entry import check_override_keys, friendly_errors
from causalmine.model.hub import check_backbone
from causalmine.objective import objective_keys, trial_value

register_with_hydra()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@friendly_errors
def main(cfg: DictConfig) -> float:
    check_backbone(cfg.model.name_or_path, cfg.model.get("tiny"))  # before the heavy imports
    from causalmine.recipes import train

    metrics = train(cfg)
    return trial_value(metrics, objective_keys(cfg), _sweeper())


def _sweeper() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().sweeper.get("_target_") if HydraConfig.initialized() else None


if __name__ == "__main__":
    sys.argv = plain_experiment_override(sys.argv)
    check_override_keys(sys.argv[1:], Path(__file__).parent / "conf", "train")
    main()
