"""Hydra glue: the schemas and resolvers the configs need, sweep tags, plain containers.

The values themselves are typed and checked in :mod:`causalmine.settings`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

from causalmine.settings import ConfigError, register_schemas

# overrides that say where a job runs or logs, not what it trains: never W&B tags
_NOT_TAGS = ("paths.", "data.root", "ckpt_path", "hydra.", "hydra/", "logger", "launcher.", "tags=")
_WANDB_TAG_LIMIT = 64  # characters; W&B rejects longer tags


def register_with_hydra() -> None:
    """Register this project's config schemas (:func:`causalmine.settings.register_schemas`)
    and interpolations (the entry points call it; Hydra hands them on to launcher workers with
    its singleton state):

    - ``${run_uid:}``: the process id, so that runs started in the same second by different
      processes still get different output directories;
    - ``${sweep_name:PREFIX}``: ``PREFIX_<multirun directory's name>`` (``null`` in a single
      run), the W&B group;
    - ``${override_tags:${tags}}``: the ``tags`` key's tags and this job's command-line
      overrides, as W&B tags;
    - ``${gpus_per_job:VALUE}``: ``auto`` becomes 1 when CUDA is available, else 0;
    - ``${key_help:NAME}``: one line per key of ``conf/NAME.yaml`` with its comment (``--help``).
    """
    register_schemas()
    OmegaConf.register_new_resolver(
        "run_uid", lambda: str(os.getpid()), replace=True, use_cache=True
    )
    OmegaConf.register_new_resolver("sweep_name", sweep_name, replace=True)
    OmegaConf.register_new_resolver("override_tags", override_tags, replace=True)
    OmegaConf.register_new_resolver("gpus_per_job", gpus_per_job, replace=True)
    OmegaConf.register_new_resolver("key_help", key_help, replace=True)


_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*)(#(?P<note>.*))?$")


def key_help(config_name: str) -> str:
    """``--help`` text: every key of ``conf/<config_name>.yaml`` (nested ones dotted) with its
    default and the comment written beside it or on the lines above it, one line per key."""
    path = Path(os.environ.get("PROJECT_ROOT", ".")) / "conf" / f"{config_name}.yaml"
    if not path.is_file():
        return f"(no {path})"
    lines, parents, pending = [], [], []
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
            continue
        match = _KEY_LINE.match(raw)
        if not match or match["key"] == "defaults" or raw.startswith("  -"):
            pending = []
            continue
        depth = len(match["indent"]) // 2
        parents = [*parents[:depth], match["key"]]
        value = match["value"].strip()
        note = (match["note"] or "").strip() or " ".join(pending)
        pending = []
        if value or note:
            lines.append(
                f"  {'.'.join(parents)}={value or '…'}" + (f"    # {note}" if note else "")
            )
    # Hydra fills its help template with string.Template: a value's ${…} must reach it as $${…}
    return "\n".join(lines).replace("$", "$$")


def plain_experiment_override(argv: list[str]) -> list[str]:
    """The command line with ``+experiment=NAME`` (the form before ``experiment`` was in the
    defaults list, which Hydra now refuses as a second value) read as ``experiment=NAME``."""
    return [a.removeprefix("+") if a.startswith("+experiment=") else a for a in argv]


def is_multirun() -> bool:
    """True inside a job of ``python train.py -m …``."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_name(prefix: str | None = None) -> str | None:
    """``prefix_`` + the name of this multirun's sweep directory; ``None`` outside a multirun."""
    if not is_multirun():
        return None
    name = Path(HydraConfig.get().sweep.dir).name
    return f"{prefix}_{name}" if prefix else name


def override_tags(base: Any = None) -> list[str]:
    """The ``tags`` key's tags (``base``), then this job's overrides (``pooling=mean``,
    ``alpha=3``…) minus paths and logging settings."""
    tags = [str(t)[:_WANDB_TAG_LIMIT] for t in (base or [])]
    if not HydraConfig.initialized():
        return tags
    for override in HydraConfig.get().overrides.task:
        override = override.lstrip("+~")
        if not override.startswith(_NOT_TAGS):
            tags.append(override[:_WANDB_TAG_LIMIT])
    return tags


def gpus_per_job(value: Any) -> int | float:
    """GPUs one sweep job reserves: a number >= 0, or ``auto`` (1 if CUDA is available, else 0)."""
    if value == "auto":
        import torch

        return int(torch.cuda.is_available())
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"launcher.gpus_per_job must be a number >= 0 or 'auto', got {value!r}")
    return value


def to_plain(cfg: DictConfig | ListConfig | Any) -> Any:
    """A fully resolved, primitive-only copy (what checkpoints and loggers should see)."""
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    return cfg
