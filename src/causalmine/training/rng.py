"""The random number generators' states (torch, CUDA, numpy, python) as checkpoint-safe values.

Lightning's own collector keeps numpy's state as an ndarray, which ``torch.load(weights_only=True)``
refuses; here every state is a tensor or a primitive, so checkpoints stay safe to load.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_states(torch_only: bool = False) -> dict[str, Any]:
    """Snapshot of every generator a training step may draw from.

    ``torch_only``: just the torch and CUDA generators, the ones a forward pass draws from
    (dropout); about 40× cheaper than including numpy's state, so fit for every step.
    """
    torch_states = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if torch_only:
        return torch_states
    np_state = np.random.get_state(legacy=False)
    version, internal, gauss_next = random.getstate()
    return {
        **torch_states,
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put every generator back where :func:`capture_rng_states` found it."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "numpy" not in states:  # a torch_only capture
        return
    np_state = states["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
