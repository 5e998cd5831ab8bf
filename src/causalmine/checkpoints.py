"""Finding and safely loading checkpoints."""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from causalmine.lit import CausalLitModule

log = logging.getLogger(__name__)

# what ModelCheckpoint names the last checkpoint (with its version counter)
LAST_NAME = re.compile(r"last(-v\d+)?\.ckpt")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt or not one of ours."""


def resolve_ckpt_path(
    ckpt_path: str | None, out_dir: Path, search_siblings: bool = True
) -> str | None:
    """``None`` stays None; ``last`` finds the newest ``last.ckpt`` under this run's output
    directory, else (``search_siblings``) under its sibling run directories; anything else must
    be an existing file.

    Multirun jobs pass ``search_siblings=False``: their siblings are the sweep's other jobs,
    with other configs.
    """
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        candidates = _last_checkpoints(out_dir.rglob("*.ckpt"))
        where = str(out_dir)
        if not candidates and search_siblings:
            candidates = _last_checkpoints(out_dir.parent.glob("*/checkpoints/*.ckpt"))
            where += " or its sibling run directories"
        if not candidates:
            raise CheckpointError(f"ckpt_path=last: no last.ckpt under {where}")
        newest = max(candidates, key=lambda p: p.stat().st_mtime)
        log.info("ckpt_path=last resolved to %s", newest)
        return str(newest)
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)


def _last_checkpoints(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if LAST_NAME.fullmatch(p.name) and p.is_file()]


def _describe(err: BaseException) -> str:
    text = str(err).strip()
    # the first sentence: torch's messages go on with advice about weights_only and miniz
    first = text.splitlines()[0].split(". ")[0][:200] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def read_checkpoint(ckpt_path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """The checkpoint's contents, loaded with ``weights_only=True`` (memory-mapped, so cheap).

    Raises :class:`CheckpointError` naming the file for anything that is not a readable
    Lightning checkpoint: missing, empty, truncated, random bytes, or another kind of file.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    damaged = "Is the file truncated or corrupt (an interrupted copy or a killed save)?"
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint: its {path.stat().st_size:,} bytes are not "
            f"a zip archive, as every torch checkpoint is. {damaged}"
        )
    with zipfile.ZipFile(path) as archive:
        # torch.load does not check the CRCs: a damaged tensor would load as wrong numbers
        damaged_member = archive.testzip()
    if damaged_member is not None:
        raise CheckpointError(f"{path}: {damaged_member} fails its CRC check. {damaged}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
    except Exception as err:  # whatever torch.load fails with, the file is unusable
        raise CheckpointError(
            f"{path}: cannot be read as a checkpoint ({_describe(err)}). {damaged}"
        ) from None
    missing = [
        k
        for k in ("state_dict", "hyper_parameters")
        if not isinstance(checkpoint, dict) or k not in checkpoint
    ]
    if missing:
        raise CheckpointError(f"{path}: not a causalmine training checkpoint (no {missing})")
    return checkpoint


def check_resumable(ckpt_path: str | Path) -> None:
    """Fail with :class:`CheckpointError` unless a training run can resume from this file."""
    checkpoint = read_checkpoint(ckpt_path)
    missing = [k for k in ("loops", "optimizer_states") if k not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{ckpt_path}: holds weights but no training state (no {missing}); it cannot resume "
            "a run (use a last.ckpt or best-….ckpt written by train.py)"
        )


def load_module(ckpt_path: str | Path, map_location: str = "cpu") -> CausalLitModule:
    """Load a training checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    read_checkpoint(ckpt_path, map_location)
    try:
        return CausalLitModule.load_from_checkpoint(
            ckpt_path, map_location=map_location, weights_only=True
        )
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{ckpt_path}: a readable checkpoint, but the model cannot be rebuilt from it "
            f"({_describe(err)})"
        ) from None
