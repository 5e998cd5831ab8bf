"""What the entry points share: a user's mistake ends the command with one line, not a traceback.

Errors that causalmine raises for bad input (data, config, checkpoint, backbone) and Lightning's
for a device the machine lacks (``trainer=gpu`` without a GPU) print ``error: <kind>: <message>`` and
exit with status 1. ``HYDRA_FULL_ERROR=1`` shows the whole traceback instead, and multirun jobs
raise as usual so that the sweep reports each failed job. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from causalmine.config import ConfigError, is_multirun

log = logging.getLogger(__name__)
Task = TypeVar("Task", bound=Callable[..., Any])


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
