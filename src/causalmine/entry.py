"""What the entry points share: a user's mistake ends the command with one line, not a traceback.

Errors that causalmine raises for bad input (data, config, checkpoint, backbone) and Lightning's
for a device the machine lacks (``trainer=gpu`` without a GPU) print ``error: <kind>: <message>`` and
exit with status 1. ``HYDRA_FULL_ERROR=1`` shows the whole traceback instead, and multirun jobs
raise as usual so that the sweep reports each failed job. Anything else is a bug and keeps its
traceback.

A command stopped by SIGTERM (``kill``, ``timeout``, a scheduler's preemption) exits with status
143 (128 + 15), as a process killed by the signal would. Lightning stops the fit at the next
step with a ``SystemExit`` of status 0, so a killed run would otherwise read as finished, with no
metrics written.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from causalmine.config import ConfigError, is_multirun

log = logging.getLogger(__name__)
Task = TypeVar("Task", bound=Callable[..., Any])
TERMINATED = 128 + 15  # the shell's status for a process that SIGTERM ended


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "the input is wrong", not "causalmine is wrong" (imported only
    when an error happens, so that the entry points keep their fast start)."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from causalmine.checkpoints import CheckpointError
    from causalmine.data.accounting import DataError
    from causalmine.model.hub import BackboneUnavailable

    return (ConfigError, DataError, CheckpointError, BackboneUnavailable, MisconfigurationException)


def user_error(err: BaseException) -> BaseException | None:
    """The user error behind ``err`` (itself, or what caused it: Hydra's ``instantiate`` wraps
    the trainer's), or ``None`` when it is not one."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, user_error_types()):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def friendly_errors(task: Task) -> Task:
    """Wrap a Hydra task function so that user errors end it with one clear line."""

    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except SystemExit as stop:
            from lightning.pytorch.utilities.exceptions import SIGTERMException

            if not isinstance(stop, SIGTERMException):
                raise
            message = "stopped by SIGTERM before the end; nothing more was written"
            log.error("%s", message)
            print(
                f"error: {message} (a training run resumes from its last checkpoint: ckpt_path=last)",
                file=sys.stderr,
            )
            sys.exit(TERMINATED)
        except Exception as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or is_multirun():
                raise
            cause = user_error(err)
            if cause is None:
                raise
            message = f"{type(cause).__name__}: {cause}"
            log.error("%s", message)
            print(f"error: {message}\n(the full traceback: HYDRA_FULL_ERROR=1)", file=sys.stderr)
            sys.exit(1)

    return run  # type: ignore[return-value]


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys = []
    for key in node.keys() if isinstance(node, DictConfig) else []:
        path = f"{prefix}{key}"
        keys.append(path)
        keys += _flat_keys(node._get_node(key), f"{path}.")
    return keys


def unknown_keys(overrides: list[str], config_dir: Path, config_name: str) -> dict[str, list[str]]:
    """Override keys that the composed config does not have, each with its closest valid keys.

    The config is composed with the overrides that select a config group (``model=roberta``),
    so keys that a group adds count as known; ``+key=`` (add), ``~key`` (delete), ``hydra.*``
    and command-line flags are left to Hydra.
    """
    import difflib

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    groups = {p.name for p in config_dir.iterdir() if p.is_dir()}
    assignments = [o for o in overrides if "=" in o and not o.startswith(("+", "~", "-", "hydra"))]
    selections = [o for o in assignments if o.split("=", 1)[0] in groups]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=selections)
    except Exception:  # a bad group choice: Hydra's own message says which options exist
        return {}
    finally:
        GlobalHydra.instance().clear()
    known = set(_flat_keys(cfg))
    unknown = {}
    for override in assignments:
        key = override.split("=", 1)[0]
        if key not in groups and key not in known:
            unknown[key] = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    return unknown


def check_override_keys(argv: list[str], config_dir: Path, config_name: str) -> None:
    """Stop a command whose overrides name a key the config lacks, saying what was meant
    (``optim.lrr`` → ``optim.lr``), before Hydra's longer message."""
    other_config = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd")
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or any(a.startswith(other_config) for a in argv):
        return  # another primary config than the one checked against: Hydra judges
    unknown = unknown_keys(argv, config_dir, config_name)
    for key, close in unknown.items():
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        print(
            f"error: unknown config key {key}{hint} (a new key is added with +{key}=…)",
            file=sys.stderr,
        )
    if unknown:
        sys.exit(1)
