"""Experiment loggers from config: CSV (default), Weights & Biases, or none.

W&B runs offline unless an API key is configured (``WANDB_API_KEY`` or ``wandb login``), is
given the fully resolved config, and is finished after every job so that multirun jobs never
write into each other's runs.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def previous_wandb_id(save_dir: str | Path) -> str | None:
    """The id of the newest W&B run (online or offline) recorded under ``save_dir``."""
    runs = sorted(Path(save_dir).glob("wandb/*run-*-*"), key=lambda p: p.name.split("run-")[-1])
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def build_loggers(cfg: DictConfig | None, resuming: bool = False) -> list[Logger]:
    """The loggers of ``cfg``; ``resuming`` (a resume in the same run directory) continues the
    directory's W&B run (same id) instead of starting a new one."""
    loggers: list[Logger] = []
    for name, settings in (cfg or {}).items():
        settings = OmegaConf.to_container(settings, resolve=True)
        if name == "wandb":
            settings.pop("artifacts", None)  # ours, read by log_artifacts
            run_id = previous_wandb_id(settings["save_dir"]) if resuming else None
            if run_id is not None and settings.get("id") is None:
                settings.update(id=run_id, resume="allow")
                log.info("resuming W&B run %s", run_id)
            if settings.get("offline") is None:
                settings["offline"] = not wandb_key_configured()
            if settings["offline"]:
                log.info(
                    "W&B runs offline (no API key configured); upload later with `wandb sync <run dir>`"
                )
            Path(settings["save_dir"]).mkdir(parents=True, exist_ok=True)
        loggers.append(instantiate(settings))
    return loggers


def keep_csv_metrics(loggers: list[Logger]) -> Path | None:
    """Before a resume into the same directory: move ``metrics.csv`` aside to
    ``metrics-before-resume-<n>.csv``, since Lightning's CSVLogger deletes an existing one."""
    for logger in loggers:
        current = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
        if current is not None and current.is_file():
            done = len(list(current.parent.glob("metrics-before-resume-*.csv")))
            kept = current.rename(current.with_name(f"metrics-before-resume-{done + 1}.csv"))
            log.info("the interrupted run's CSV log is kept as %s", kept)
            return kept
    return None


# the config tree's sections in reading order; the others follow alphabetically
_TREE_FIRST = ("data", "model", "freeze", "optim", "decode", "trainer", "callbacks", "logger")


def print_config_tree(cfg: DictConfig, save_to: Path | None = None, show: bool = True) -> str:
    """The resolved config as a rich tree, one branch per top-level key (printed unless
    ``show`` is false, and written to ``save_to``); returns the plain text."""
    from rich.console import Console
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in _TREE_FIRST if k in cfg] + sorted(k for k in cfg if k not in _TREE_FIRST)
    for key in keys:
        value = cfg[key]
        text = (
            OmegaConf.to_yaml(value, resolve=True)
            if OmegaConf.is_config(value)
            else OmegaConf.to_yaml({key: value}, resolve=True).split(": ", 1)[1]
        )
        tree.add(key).add(Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
    if show:
        Console().print(tree)
    recorder = Console(record=True, width=120, file=io.StringIO())
    recorder.print(tree)
    plain = recorder.export_text()
    if save_to is not None:
        save_to.write_text(plain)
    return plain


def log_run_config(loggers: list[Logger], resolved: dict[str, Any]) -> None:
    for logger in loggers:
        logger.log_hyperparams(resolved)


def log_artifacts(loggers: list[Logger], cfg: DictConfig | None, files: dict[str, Path]) -> None:
    """Attach the run's results to its W&B run (``logger.wandb.artifacts``, on by default):
    each entry of ``files`` (``metrics.json``, the exported model directory …) as an artifact
    named ``<key>-<run id>`` of type ``<key>``."""
    settings = (cfg or {}).get("wandb") or {}
    if not settings.get("artifacts", True):
        return
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb

        run = logger.experiment
        for kind, path in files.items():
            artifact = wandb.Artifact(f"{kind}-{run.id}", type=kind)
            if path.is_dir():
                artifact.add_dir(str(path))
            else:
                artifact.add_file(str(path))
            run.log_artifact(artifact)


def finish_loggers(loggers: list[Logger]) -> None:
    for logger in loggers:
        logger.finalize("success")
        if isinstance(logger, WandbLogger):
            import wandb

            wandb.finish()
