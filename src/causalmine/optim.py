"""Optimizer and learning-rate schedule: AdamW parameter groups and linear warm-up/decay.

Groups are split by part (backbone or heads, and a task's own head when it has its own learning
rate), by depth (for layer-wise decay) and by weight decay (none on biases and normalisation
weights). Statically frozen parameters are left out;
a ``gradual`` backbone is in from the start, held at learning rate 0 until it thaws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from causalmine.model.freezing import HEADS, parameter_depths
from causalmine.model.network import CausalNetwork
from causalmine.settings import ConfigError, FreezeConfig, OptimConfig

# a task's own head (CausalNetwork's attribute) and the optim key of its learning rate
TASK_HEADS: dict[str, str] = {
    module: f"{task}_head_lr" for task, modules in HEADS.items() for module in modules
}


def _head_group(name: str, optim: OptimConfig, head_lr: float) -> tuple[str, float]:
    """The group of a parameter above the backbone and its learning rate: a task's own head
    with its own rate set, else the shared ``heads`` group (reader, pooling, every head whose
    rate is null), so that the default groups, and the optimizer states of checkpoints, stay
    as they were."""
    part = name.split(".", 1)[0]
    own_lr = getattr(optim, TASK_HEADS[part]) if part in TASK_HEADS else None
    return (part, own_lr) if own_lr is not None else ("heads", head_lr)


def parameter_groups(
    network: CausalNetwork,
    optim: OptimConfig,
    freeze: FreezeConfig,
    loss_parameters: Sequence[torch.nn.Parameter] = (),
) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters; each group is named and marked ``thaws``.
    ``loss_parameters`` (learned task weights) form a last group at the heads' learning rate,
    without weight decay (decay would pull every task's log variance towards 0)."""
    depths = parameter_depths(network)
    top = max((d for d in depths.values() if d is not None), default=0)
    head_lr = optim.head_lr if optim.head_lr is not None else optim.lr
    groups: dict[tuple, dict[str, Any]] = {}
    for name, param in network.named_parameters():
        if not param.requires_grad:
            continue  # statically frozen: not in the optimizer at all
        depth = depths[name]
        decay = param.ndim >= 2  # no weight decay on biases and normalisation weights
        if depth is None:
            part, lr = _head_group(name, optim, head_lr)
            key, thaws = (part, -1, decay), False
        else:
            lr = optim.lr * optim.layer_decay ** (top - depth)
            thaws = freeze.policy == "gradual"
            if thaws:
                lr *= freeze.lr_ratio
            key = ("backbone", depth if optim.layer_decay != 1.0 else -1, decay)
        group = groups.setdefault(
            key,
            {
                "params": [],
                "lr": lr,
                "weight_decay": optim.weight_decay if decay else 0.0,
                "thaws": thaws,
                "name": f"{key[0]}{'' if key[1] < 0 else f'_layer{key[1]}'}{'' if decay else '_no_decay'}",
            },
        )
        group["params"].append(param)
    ordered = [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1], not k[2]))]
    if loss_parameters:
        ordered.append(
            {
                "params": list(loss_parameters),
                "lr": head_lr,
                "weight_decay": 0.0,
                "thaws": False,
                "name": "loss_weights",
            }
        )
    return ordered


def linear_schedule(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def use_fused(
    groups: list[dict[str, Any]], fused: bool | None, scaled_clipping: bool = False
) -> bool | None:
    """Whether AdamW runs fused: ``fused`` if set, else whether torch has a fused kernel for the
    device of every parameter. On this project's 2-core CPU the fused step over MiniLM's 22 M
    parameters takes ~16 ms instead of ~150 ms for the default (foreach) one
    (experiments/RESULTS.md, speed).

    ``scaled_clipping``: gradients are clipped under a loss scaler (fp16 mixed precision). A
    fused step unscales the gradients itself, after the clip would have had to, so Lightning
    refuses the pair: ``null`` then means foreach, and ``true`` is an error.
    """
    if scaled_clipping:
        if fused:
            raise ConfigError(
                "optim.fused=true cannot run with gradient clipping under fp16 mixed precision "
                "(the fused step unscales the gradients after the clip): set optim.fused=null "
                "or false, trainer.gradient_clip_val=null, or trainer.precision=bf16-mixed"
            )
        return None  # torch's default (foreach)
    if fused is not None:
        return fused
    devices = {p.device.type for g in groups for p in g["params"]}
    if devices and devices <= set(_fused_devices()):
        return True
    return None  # torch's default


def _fused_devices() -> list[str]:
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the helper: keep torch's default
        return []
    return _get_fused_kernels_supported_devices()


def build_optimizer(
    network: CausalNetwork,
    optim: OptimConfig,
    freeze: FreezeConfig,
    total_steps: int,
    is_thawed: Callable[[], bool],
    loss_parameters: Sequence[torch.nn.Parameter] = (),
    scaled_clipping: bool = False,
) -> tuple[torch.optim.Optimizer, LambdaLR]:
    """AdamW and a per-step schedule: linear warm-up then linear decay to 0; groups that thaw
    get factor 0 until ``is_thawed()``. ``scaled_clipping``: see :func:`use_fused`."""
    groups = parameter_groups(network, optim, freeze, loss_parameters)
    optimizer = torch.optim.AdamW(
        groups,
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
        fused=use_fused(groups, optim.fused, scaled_clipping),
    )
    warmup = (
        optim.warmup_steps
        if optim.warmup_steps is not None
        else round(optim.warmup_ratio * total_steps)
    )
    base = linear_schedule(total_steps, warmup)

    def held(step: int) -> float:
        return base(step) if is_thawed() else 0.0

    scheduler = LambdaLR(optimizer, [held if g["thaws"] else base for g in groups])
    return optimizer, scheduler


def thawing_parameters(optimizers: Sequence[torch.optim.Optimizer]) -> list[torch.nn.Parameter]:
    """The parameters of the groups marked ``thaws`` (a ``gradual`` backbone): while it is still
    frozen they take no optimizer step, so their gradients are dropped and nothing else may
    count them as trained."""
    return [
        param
        for optimizer in optimizers
        for group in optimizer.param_groups
        if group.get("thaws")
        for param in group["params"]
    ]
