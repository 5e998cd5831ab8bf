"""Freezing policies and layer-wise learning rates: which parameters train, and at what rate.

Policies (config group ``freeze=``):

- ``none``: everything trains.
- ``embeddings``: the backbone's embedding layer is frozen.
- ``bottom_k``: the embeddings and the lowest ``freeze.layers`` transformer layers are frozen.
- ``backbone``: the whole backbone is frozen (heads only).
- ``gradual``: the backbone is frozen until epoch ``freeze.unfreeze_at_epoch``, then trains
  with learning rate ``freeze.lr_ratio × optim.lr`` (and ``optim.layer_decay``).

``freeze.heads`` additionally keeps chosen heads (``seq``, ``span``, ``pair``) fixed.

Statically frozen parameters get ``requires_grad=False`` and are left out of the optimizer.
``gradual`` keeps the backbone in the optimizer from the start with learning rate 0 (and its
gradients zeroed) until it thaws, so the optimizer's state, the schedule, checkpoint resume
and DDP's parameter registration never change shape mid-run.
"""

from __future__ import annotations

from torch import nn

from causalmine.model.network import CausalNetwork
from causalmine.settings import FreezeConfig

# the network's modules behind each name freeze.heads takes (settings.FREEZABLE_HEADS)
HEADS = {"seq": ("seq_head",), "span": ("span_heads",), "pair": ("pair_head",)}


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers (``encoder.layer`` for BERT-like models)."""
    expected = getattr(getattr(backbone, "config", None), "num_hidden_layers", None)
    for module in backbone.modules():
        if isinstance(module, nn.ModuleList) and len(module) == expected:
            return module
    raise ValueError(f"cannot find the {expected} transformer layers of {type(backbone).__name__}")


def static_frozen(name: str, depth: int | None, config: FreezeConfig) -> bool:
    """Whether a parameter never trains under the policy (gradual thawing is not static).

    ``depth``: 0 embeddings, 1..L transformer layers, L+1 above them, None outside the backbone.
    """
    top = name.split(".", 1)[0]
    if any(top in HEADS[h] for h in config.heads):
        return True
    if depth is None:
        return False
    if config.policy == "embeddings":
        return depth == 0
    if config.policy == "bottom_k":
        return depth <= config.layers
    return config.policy == "backbone"


def apply_static_freezing(network: CausalNetwork, config: FreezeConfig) -> dict[str, int]:
    """Set ``requires_grad=False`` on statically frozen parameters; return parameter counts."""
    depths = parameter_depths(network)
    for name, param in network.named_parameters():
        if static_frozen(name, depths[name], config):
            param.requires_grad_(False)
    total = sum(p.numel() for p in network.parameters())
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    thawing = (
        sum(
            p.numel()
            for n, p in network.named_parameters()
            if p.requires_grad and depths[n] is not None
        )
        if config.policy == "gradual"
        else 0
    )
    return {
        "total": total,
        "trainable": trainable,
        "frozen": total - trainable,
        "frozen_until_thaw": thawing,
    }


def parameter_depths(network: CausalNetwork) -> dict[str, int | None]:
    """Depth of every parameter: 0 embeddings, 1..L transformer layers, L+1 other backbone
    parameters above them, None outside the backbone."""
    depths: dict[str, int | None] = {}
    layers = transformer_layers(network.backbone)
    layer_of = {id(p): i + 1 for i, layer in enumerate(layers) for p in layer.parameters()}
    num_layers = len(layers)
    for name, param in network.named_parameters():
        if not name.startswith("backbone."):
            depths[name] = None
        elif id(param) in layer_of:
            depths[name] = layer_of[id(param)]
        elif ".embeddings." in f".{name}" or "embed" in name.split(".")[1]:
            depths[name] = 0
        else:
            depths[name] = num_layers + 1
    return depths
