"""Experiment loggers from config: CSV (default), Weights & Biases, or none.

W&B runs offline unless an API key is configured (``WANDB_API_KEY`` or ``wandb login``), is
given the fully resolved config, and is finished after every job so that multirun jobs never
write into each other's runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def build_loggers(cfg: DictConfig | None) -> list[Logger]:
    loggers: list[Logger] = []
    for name, settings in (cfg or {}).items():
        settings = OmegaConf.to_container(settings, resolve=True)
        if name == "wandb":
            if settings.get("offline") is None:
                settings["offline"] = not wandb_key_configured()
            if settings["offline"]:
                log.info(
                    "W&B runs offline (no API key configured); upload later with `wandb sync <run dir>`"
                )
            Path(settings["save_dir"]).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(settings))
    return loggers


def log_run_config(loggers: list[Logger], resolved: dict[str, Any]) -> None:
    for logger in loggers:
        logger.log_hyperparams(resolved)


def finish_loggers(loggers: list[Logger]) -> None:
    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()
