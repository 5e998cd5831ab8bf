"""Config helpers: Hydra resolvers, early validation with clear messages, plain containers."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

LOGGER_CHOICES = ("csv", "wandb")
# overrides that say where a job runs or logs, not what it trains: never W&B tags
_NOT_TAGS = ("paths.", "data.root", "ckpt_path", "hydra.", "hydra/", "logger", "launcher.", "tags=")
_WANDB_TAG_LIMIT = 64  # characters; W&B rejects longer tags


class ConfigError(ValueError):
    """A config value that cannot work; raised before anything heavy starts."""


def register_resolvers() -> None:
    """Register this project's interpolations (the entry points call it; Hydra hands them on
    to launcher workers with its singleton state):

    - ``${run_uid:}``: the process id, so that runs started in the same second by different
      processes still get different output directories;
    - ``${sweep_name:PREFIX}``: ``PREFIX_<multirun directory's name>`` (``null`` in a single
      run), the W&B group;
    - ``${override_tags:${tags}}``: the ``tags`` key's tags and this job's command-line
      overrides, as W&B tags;
    - ``${gpus_per_job:VALUE}``: ``auto`` becomes 1 when CUDA is available, else 0;
    - ``${key_help:NAME}``: one line per key of ``conf/NAME.yaml`` with its comment (``--help``).
    """
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
    return "\n".join(lines)


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


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_decode_method(method: Any, allow_none: bool = False) -> None:
    """``decode.method`` names a decoding method (``None`` = keep the model's, where allowed)."""
    from causalmine.scoring.decode import DECODE_METHODS

    if method is None and allow_none:
        return
    _require(
        method in DECODE_METHODS,
        f"decode.method must be one of {', '.join(DECODE_METHODS)}, got {method!r}",
    )


def check_force_relation_setting(force_relation: bool, method: str) -> None:
    """``decode.force_relation`` with this ``decode.method`` (the decoder's own rule, as a
    config error)."""
    from causalmine.scoring.decode import check_force_relation

    try:
        check_force_relation(force_relation, method)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_train_config(cfg: DictConfig) -> None:
    """Validate the keys a researcher sweeps, before any model or data is loaded."""
    # imported here: this module must stay light for the entry points (see model/hub.py)
    from causalmine.data.accounting import ON_ERROR_CHOICES
    from causalmine.model.freezing import FreezeConfig
    from causalmine.model.pooling import POOLING_MODES
    from causalmine.optim import OptimConfig

    _require(
        cfg.pooling in POOLING_MODES, f"pooling must be one of {POOLING_MODES}, got {cfg.pooling!r}"
    )
    for key in ("alpha", "span_weight", "pair_weight"):
        value = cfg.get(key)
        _require(
            isinstance(value, int | float) and value >= 0,
            f"{key} must be a number >= 0, got {value!r}",
        )
    _require(
        cfg.alpha + cfg.span_weight + cfg.pair_weight > 0,
        "alpha, span_weight and pair_weight are all 0: nothing to train",
    )
    m = cfg.model
    _require(bool(m.get("name_or_path")), "model.name_or_path is empty")
    _require(
        isinstance(m.span_heads, int) and m.span_heads >= 1,
        f"model.span_heads must be an integer >= 1, got {m.span_heads!r}",
    )
    for key in ("dropout", "head_dropout"):
        _require(0.0 <= m[key] < 1.0, f"model.{key} must be in [0, 1), got {m[key]!r}")
    if m.lstm.enabled:
        _require(
            m.lstm.hidden >= 1 and m.lstm.layers >= 1,
            "model.lstm.hidden and model.lstm.layers must be >= 1",
        )
    d = cfg.data
    _require(
        d.on_error in ON_ERROR_CHOICES,
        f"data.on_error must be one of {ON_ERROR_CHOICES}, got {d.on_error!r}",
    )
    _require(
        0.0 <= d.val_fraction < 1.0, f"data.val_fraction must be in [0, 1), got {d.val_fraction!r}"
    )
    _require(d.max_length >= 8, f"data.max_length must be >= 8, got {d.max_length!r}")
    _require(
        d.batch_size >= 1 and d.eval_batch_size >= 1,
        "data.batch_size and data.eval_batch_size must be >= 1",
    )
    o = cfg.optim
    _require(o.lr > 0, f"optim.lr must be > 0, got {o.lr!r}")
    _require(
        o.head_lr is None or o.head_lr > 0, f"optim.head_lr must be > 0 or null, got {o.head_lr!r}"
    )
    _require(
        0.0 <= o.warmup_ratio < 1.0, f"optim.warmup_ratio must be in [0, 1), got {o.warmup_ratio!r}"
    )
    for section, build in (("optim", OptimConfig), ("freeze", FreezeConfig)):
        try:
            build(**to_plain(cfg[section]))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{section}: {err}") from None
    kinds = list(cfg.decode.required_kinds)
    _require(
        set(kinds) <= {"C", "E", "S"},
        f"decode.required_kinds must be drawn from C, E, S; got {kinds}",
    )
    check_decode_method(cfg.decode.get("method", "argmax"))
    check_force_relation_setting(
        bool(cfg.decode.get("force_relation")), cfg.decode.get("method", "argmax")
    )
    for name in cfg.get("logger") or {}:
        _require(
            name in LOGGER_CHOICES,
            f"unknown logger {name!r}; use logger=csv, logger=wandb or logger=none",
        )
    _require(
        cfg.get("test_checkpoint", "best") in ("best", "last"),
        f"test_checkpoint must be best or last, got {cfg.get('test_checkpoint')!r}",
    )
    monitor = cfg.get("monitor")
    _require(
        isinstance(monitor, str) and monitor.startswith("val/"),
        f"monitor must name a validation metric (val/…), got {monitor!r}",
    )
    keys = to_plain(cfg.get("objective"))
    _require(
        keys is None
        or (
            isinstance(keys, list)
            and len(keys) > 0
            and all(isinstance(k, str) and k.startswith("val/") for k in keys)
        ),
        f"objective must be a non-empty list of validation metrics (val/…), got {keys!r}",
    )
