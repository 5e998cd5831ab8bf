"""Freezing policies: frozen parameters stay bit-identical, the others train; gradual thaws."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins import MixedPrecision
from torch.utils.data import DataLoader

from causalmine.data.collate import CausalCollator
from causalmine.data.datamodule import EncodedDataset
from causalmine.data.encoding import encode_example
from causalmine.data.tags import parse_tagged
from causalmine.lit import CausalLitModule
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.freezing import FreezeConfig, parameter_depths
from causalmine.optim import OptimConfig, build_optimizer, parameter_groups
from causalmine.schema import Example
from causalmine.settings import ConfigError
from causalmine.training import training_callbacks

TINY = {
    "arch": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 37,
}
SENTENCES = [
    "<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell</ARG0> .",
    "<ARG0>Heavy rain</ARG0> <SIG0>caused</SIG0> <ARG1>floods in the north</ARG1> .",
    "<ARG1>Workers struck</ARG1> <SIG0>after</SIG0> <ARG0>talks failed</ARG0> .",
]


@pytest.fixture(scope="module")
def loader():
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", TINY))
    examples = []
    for i, tagged in enumerate(SENTENCES):
        parsed = parse_tagged(tagged)
        examples.append(
            Example(
                id=str(i),
                text=" ".join(parsed.words),
                doc_id=str(i),
                seq_label=1,
                relations=[parsed.relation],
            )
        )
    examples.append(
        Example(id="n", text="The sky is blue today .", doc_id="n", seq_label=0, relations=[])
    )
    items = [encode_example(e, tokenizer, 32, 2) for e in examples]
    return DataLoader(
        EncodedDataset(items), batch_size=2, collate_fn=CausalCollator(tokenizer)
    ), len(tokenizer)


def _module(vocab_size: int, network: dict | None = None, **freeze) -> CausalLitModule:
    torch.manual_seed(0)
    return CausalLitModule(
        network={
            "name_or_path": "tiny-bert",
            "tiny": TINY,
            "span_heads": 2,
            "vocab_size": vocab_size,
            "pooling": "pooler",
            **(network or {}),
        },
        optim={"lr": 1e-2, "head_lr": 1e-2, "warmup_ratio": 0.0},
        freeze=freeze,
    )


def _train(
    module: CausalLitModule, loader: DataLoader, epochs: int, **trainer_options
) -> dict[str, torch.Tensor]:
    before = {n: p.detach().clone() for n, p in module.network.named_parameters()}
    trainer = L.Trainer(
        max_epochs=epochs,
        **trainer_options,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=training_callbacks(),
    )
    trainer.fit(module, train_dataloaders=loader)
    return before


def _changed(module: CausalLitModule, before: dict[str, torch.Tensor]) -> set[str]:
    return {
        n for n, p in module.network.named_parameters() if not torch.equal(p.detach(), before[n])
    }


@pytest.mark.parametrize(
    ("freeze", "frozen_depths"),
    [
        ({"policy": "none"}, set()),
        ({"policy": "embeddings"}, {0}),
        ({"policy": "bottom_k", "layers": 2}, {0, 1, 2}),
        ({"policy": "backbone"}, {0, 1, 2, 3, 4}),
    ],
)
def test_static_policies_freeze_exactly_their_parameters(loader, freeze, frozen_depths):
    data, vocab = loader
    module = _module(vocab, **freeze)
    depths = parameter_depths(module.network)
    before = _train(module, data, epochs=2)
    changed = _changed(module, before)
    frozen = {n for n, d in depths.items() if d in frozen_depths}
    assert frozen.isdisjoint(changed)
    # everything else trains (exempt: the pair head and embedding rows this data never reaches)
    unreached = ("token_type", "position", "pair_head")
    others = {n for n in depths if n not in frozen and not any(u in n for u in unreached)}
    assert others <= changed, sorted(others - changed)
    assert module.parameter_counts["frozen"] == sum(
        p.numel() for n, p in module.network.named_parameters() if n in frozen
    )


def test_frozen_heads_stay_fixed(loader):
    data, vocab = loader
    module = _module(vocab, heads=["seq", "pair"])
    before = _train(module, data, epochs=1)
    changed = _changed(module, before)
    assert not any(n.startswith(("seq_head", "pair_head")) for n in changed)
    assert any(n.startswith("span_heads") for n in changed) and any(
        n.startswith("backbone") for n in changed
    )


def test_gradual_thaws_at_the_configured_epoch(loader):
    data, vocab = loader
    backbone_query = "backbone.encoder.layer.0.attention.self.query.weight"
    frozen_run = _module(vocab, policy="gradual", unfreeze_at_epoch=2)
    before = _train(frozen_run, data, epochs=2)  # epochs 0 and 1: still frozen
    changed = _changed(frozen_run, before)
    assert changed and not any(n.startswith("backbone.") for n in changed)
    thawing_run = _module(vocab, policy="gradual", unfreeze_at_epoch=2)
    before = _train(thawing_run, data, epochs=3)  # epoch 2 thaws the backbone
    assert backbone_query in _changed(thawing_run, before)
    assert changed <= _changed(thawing_run, before)


def test_layer_decay_scales_learning_rates_by_depth(loader):
    _, vocab = loader
    module = _module(vocab)
    groups = parameter_groups(
        module.network, OptimConfig(lr=1.0, head_lr=5.0, layer_decay=0.5), FreezeConfig()
    )
    lrs = {g["name"]: g["lr"] for g in groups}
    assert (
        lrs["backbone_layer3"] == 1.0
        and lrs["backbone_layer2"] == 0.5
        and lrs["backbone_layer0"] == 0.5**3
    )
    assert lrs["heads"] == 5.0 and lrs["heads_no_decay"] == 5.0
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("_no_decay"))


def test_task_heads_take_their_own_learning_rates(loader):
    """optim.{span,seq,pair}_head_lr move exactly that task's head into its own group; the
    reader and pooling, shared by every task, stay at head_lr; unset, the groups are the
    default ones (a checkpoint's optimizer state keeps matching them)."""
    _, vocab = loader
    network = _module(vocab, network={"lstm": {"enabled": True, "hidden": 8}}).network
    default = parameter_groups(network, OptimConfig(lr=1.0, head_lr=5.0), FreezeConfig())
    assert [g["name"] for g in default] == [
        "backbone",
        "backbone_no_decay",
        "heads",
        "heads_no_decay",
    ]
    groups = parameter_groups(
        network, OptimConfig(lr=1.0, head_lr=5.0, seq_head_lr=2.0, span_head_lr=7.0), FreezeConfig()
    )
    names = {id(p): n for n, p in network.named_parameters()}
    members = {g["name"]: {names[id(p)].split(".")[0] for p in g["params"]} for g in groups}
    lrs = {g["name"]: g["lr"] for g in groups}
    assert members["seq_head"] == members["seq_head_no_decay"] == {"seq_head"}
    assert members["span_heads"] == {"span_heads"} and lrs["span_heads"] == 7.0
    assert lrs["seq_head"] == lrs["seq_head_no_decay"] == 2.0
    assert members["heads"] | members["heads_no_decay"] == {"lstm", "pooling", "pair_head"}
    assert lrs["heads"] == 5.0 and lrs["span_heads_no_decay"] == 7.0
    assert sum(len(g["params"]) for g in groups) == sum(len(g["params"]) for g in default)
    pair = parameter_groups(network, OptimConfig(head_lr=5.0, pair_head_lr=3.0), FreezeConfig())
    members = {g["name"]: {names[id(p)].split(".")[0] for p in g["params"]} for g in pair}
    assert (
        members["pair_head"] == {"pair_head"}
        and {g["name"]: g["lr"] for g in pair}["pair_head"] == 3.0
    )
    assert members["heads"] | members["heads_no_decay"] == {
        "lstm",
        "pooling",
        "seq_head",
        "span_heads",
    }
    with pytest.raises(ConfigError, match=r"optim\.seq_head_lr"):
        OptimConfig(seq_head_lr=0.0)


def test_resume_refuses_a_checkpoint_with_other_optimizer_groups(loader):
    """Same-sized groups would take each other's AdamW states silently: a checkpoint trained
    with optim.seq_head_lr does not resume under optim.pair_head_lr (or without it)."""
    _, vocab = loader

    def optimizer_state(**optim) -> dict:
        module = _module(vocab)
        module.optim_config = OptimConfig(**optim)
        optimizer, _ = build_optimizer(
            module.network, module.optim_config, FreezeConfig(), 10, lambda: True
        )
        return {"optimizer_states": [optimizer.state_dict()]}

    saved = optimizer_state(seq_head_lr=2e-3)
    resumed = _module(vocab)
    resumed.optim_config = OptimConfig(seq_head_lr=2e-3)
    resumed.check_optimizer_groups(saved)  # the same settings: loads
    for other in ({"pair_head_lr": 2e-3}, {}):
        resumed.optim_config = OptimConfig(**other)
        with pytest.raises(ConfigError, match="optimizer groups"):
            resumed.check_optimizer_groups(saved)
        resumed.on_load_checkpoint(saved)  # not a fit (eval, export): the weights are all it reads
    resumed.check_optimizer_groups({"state_dict": {}})  # weights only: nothing to compare


def test_bad_policy_is_rejected():
    with pytest.raises(ValueError, match=r"freeze\.policy"):
        FreezeConfig(policy="half")
    with pytest.raises(ValueError, match=r"freeze\.heads"):
        FreezeConfig(heads=["sequence"])


@pytest.mark.parametrize(("setting", "fused"), [(None, True), (True, True), (False, False)])
def test_adamw_runs_fused_where_torch_has_the_kernel(loader, setting, fused):
    _, vocab = loader
    module = _module(vocab)
    optimizer, _ = build_optimizer(
        module.network, OptimConfig(fused=setting), FreezeConfig(), 10, lambda: True
    )
    assert optimizer.defaults["fused"] is fused


def test_fused_and_foreach_adamw_take_the_same_steps(loader):
    """The fused kernel is the same algorithm: a few steps of each end at the same weights."""
    batches, vocab = loader
    weights = []
    for fused in (True, False):
        module = _module(vocab)
        start = torch.cat([p.detach().flatten() for p in module.network.parameters()])
        optimizer, _ = build_optimizer(
            module.network,
            OptimConfig(fused=fused, lr=1e-2, warmup_ratio=0.0),
            FreezeConfig(),
            10,
            lambda: True,
        )
        for batch in batches:
            module.training_step(batch, 0).backward()
            optimizer.step()
            optimizer.zero_grad()
        weights.append(torch.cat([p.detach().flatten() for p in module.network.parameters()]))
        assert not torch.equal(weights[-1], start)
    # one step moves a weight by up to lr = 1e-2; the kernels differ only in rounding
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=5e-5)


def test_fp16_loss_scaling_with_clipping_takes_foreach_and_refuses_fused(loader):
    """Lightning cannot clip before a fused step that unscales fp16 gradients itself."""
    _, vocab = loader
    module = _module(vocab)
    optimizer, _ = build_optimizer(
        module.network, OptimConfig(), FreezeConfig(), 10, lambda: True, scaled_clipping=True
    )
    assert not optimizer.defaults["fused"]
    with pytest.raises(ConfigError, match=r"optim\.fused=true cannot run with gradient clipping"):
        build_optimizer(
            module.network,
            OptimConfig(fused=True),
            FreezeConfig(),
            10,
            lambda: True,
            scaled_clipping=True,
        )


def test_fp16_loss_scaling_with_clipping_trains_foreach_under_lightning(loader):
    """The wiring: under a real fp16 loss scaler with clipping, the module asks for foreach,
    and Lightning unscales, clips and steps without refusing."""
    batches, vocab = loader
    module = _module(vocab)
    _train(
        module,
        batches,
        epochs=1,
        max_steps=2,
        gradient_clip_val=0.01,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))],
    )
    assert module.trainer.global_step == 2
    assert not module.trainer.optimizers[0].defaults["fused"]


@pytest.mark.parametrize(("algorithm", "value"), [("norm", 0.01), ("value", 0.001)])
def test_bf16_mixed_precision_clips_the_gradients_of_a_fused_step(loader, algorithm, value):
    """Lightning's mixed-precision plugin refuses to clip for a fused AdamW; without a loss
    scaler (bf16) the module clips the true-scale gradients itself, exactly as asked."""
    batches, vocab = loader
    module = _module(vocab)
    optimizer, _ = build_optimizer(module.network, OptimConfig(), FreezeConfig(), 10, lambda: True)
    assert optimizer.defaults["fused"] is True
    module.training_step(next(iter(batches)), 0).backward()
    module._trainer = SimpleNamespace(precision_plugin=MixedPrecision("bf16-mixed", "cpu"))
    grads = [p.grad for p in module.network.parameters() if p.grad is not None]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) > 10 * value
    module.configure_gradient_clipping(optimizer, value, algorithm)
    if algorithm == "norm":
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        assert norm == pytest.approx(value, rel=1e-3)
    else:
        assert max(g.abs().max() for g in grads) == pytest.approx(value)
