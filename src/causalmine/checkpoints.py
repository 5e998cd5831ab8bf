"""Finding and safely loading checkpoints."""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path

from causalmine.lit import CausalLitModule

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, corrupt or not one of ours."""


def resolve_ckpt_path(ckpt_path: str | None, out_dir: Path) -> str | None:
    """``None`` stays None; ``last`` finds the newest ``last.ckpt`` of this run's output directory,
    else of its sibling runs (same task); anything else must be an existing file."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        candidates = sorted(out_dir.glob("**/last*.ckpt")) or sorted(
            out_dir.parent.glob("*/checkpoints/last*.ckpt")
        )
        if not candidates:
            raise CheckpointError(
                f"ckpt_path=last: no last.ckpt under {out_dir} or its sibling run directories"
            )
        newest = max(candidates, key=lambda p: p.stat().st_mtime)
        log.info("ckpt_path=last resolved to %s", newest)
        return str(newest)
    if not Path(ckpt_path).is_file():
        raise CheckpointError(f"ckpt_path={ckpt_path}: no such file")
    return str(ckpt_path)


def load_module(ckpt_path: str | Path, map_location: str = "cpu") -> CausalLitModule:
    """Load a training checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return CausalLitModule.load_from_checkpoint(
            path, map_location=map_location, weights_only=True
        )
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError) as err:
        raise CheckpointError(
            f"{path}: cannot be loaded as a causalmine checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:200]}). "
            "Is the file truncated or corrupt (an interrupted copy or a killed save)?"
        ) from None
