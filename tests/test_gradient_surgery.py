"""Gradient surgery (``loss.gradient_surgery=pcgrad``, Yu et al. 2020): the projection, the
backward pass that applies it, and the training step that uses it."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader

from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import load_cnc
from causalmine.data.datamodule import EncodedDataset
from causalmine.data.encoding import encode_example
from causalmine.lit import CausalLitModule
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.gradient_surgery import (
    cosine_similarities,
    pcgrad_backward,
    project_conflicting,
)
from causalmine.recipes import train
from causalmine.settings import ConfigError, LossWeights


def test_conflicting_gradients_lose_their_component_along_each_other():
    # g1 · g2 = -1 < 0: g1 - (-1 / |g2|^2) g2 = (0.5, 0.5) and g2 - (-1 / |g1|^2) g1 = (0, 1)
    projected = project_conflicting(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    assert torch.allclose(projected, torch.tensor([[0.5, 0.5], [0.0, 1.0]]))


def test_gradients_that_agree_are_left_as_they_are():
    gradients = torch.tensor([[1.0, 2.0, 0.0], [0.5, -0.1, 3.0], [0.0, 1.0, 1.0]])
    assert torch.equal(project_conflicting(gradients), gradients)


def test_a_zero_gradient_conflicts_with_nothing():
    gradients = torch.tensor([[0.0, 0.0], [-1.0, 1.0]])
    projected = project_conflicting(gradients)
    assert torch.isfinite(projected).all() and torch.equal(projected, gradients)


def test_three_tasks_project_one_other_task_after_another_in_order():
    g = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 1.0]])
    first = g[0] + 0.5 * g[1]  # g0 · g1 = -1, |g1|^2 = 2
    first = first - (first @ g[2]).clamp(max=0) / (g[2] @ g[2]) * g[2]  # then along g2
    assert torch.allclose(project_conflicting(g)[0], first)


vectors = st.lists(
    st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32), min_size=6, max_size=6
)


@settings(max_examples=200, deadline=None)
@given(vectors, vectors)
def test_the_step_never_goes_against_either_of_two_tasks(a, b):
    """PCGrad's guarantee for two tasks: the summed step has a non-negative inner product with
    each task's own gradient (the plain sum can point against one of them)."""
    gradients = torch.tensor([a, b], dtype=torch.float64)
    step = project_conflicting(gradients).sum(dim=0)
    scale = float(gradients.norm(dim=1).prod()) + 1.0
    for g in gradients:
        assert float(step @ g) >= -1e-9 * scale


def test_cosines_name_each_pair_of_tasks():
    cosines = cosine_similarities(
        torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]), ["seq", "span", "pair"]
    )
    assert set(cosines) == {"seq_span", "seq_pair", "span_pair"}
    assert cosines["seq_span"].item() == pytest.approx(-1.0)
    assert cosines["seq_pair"].item() == 0.0


class _TwoTasks(nn.Module):
    """A shared layer under two heads, the shape of the unified network. The heads start equal,
    with outputs near 1, and one task pulls them to 0, the other to 3: the tasks conflict."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(3, 4)
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)
        with torch.no_grad():
            self.head_a.weight.mul_(0.1)
            self.head_a.bias.fill_(1.0)
            self.head_b.load_state_dict(self.head_a.state_dict())

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.shared(x))
        return {"a": self.head_a(h).pow(2).mean(), "b": (self.head_b(h) - 3).pow(2).mean()}


def test_the_backward_pass_projects_the_shared_layer_and_leaves_each_head_its_own_gradient():
    torch.manual_seed(0)
    model, x = _TwoTasks(), torch.randn(5, 3)
    params = list(model.parameters())
    grads = {
        task: torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        for task, term in model.terms(x).items()
    }
    shared = torch.stack([torch.cat([g.reshape(-1) for g in grads[t][:2]]) for t in "ab"])
    g_a, g_b = shared
    inner = g_a @ g_b
    assert inner < 0
    expected = (g_a - inner / (g_b @ g_b) * g_b) + (g_b - inner / (g_a @ g_a) * g_a)

    model.shared.weight.grad = torch.ones_like(model.shared.weight)  # accumulated before
    cosines = pcgrad_backward(model.terms(x), params, scale=lambda t: t)
    got = torch.cat([model.shared.weight.grad.reshape(-1) - 1, model.shared.bias.grad])
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, g_a + g_b, atol=1e-3)  # not the plain sum
    assert torch.equal(model.head_a.weight.grad, grads["a"][2])
    assert torch.equal(model.head_b.bias.grad, grads["b"][5])
    assert cosines["a_b"].item() == pytest.approx(float(inner / (g_a.norm() * g_b.norm())))


def test_the_backward_pass_needs_two_tasks():
    model = _TwoTasks()
    with pytest.raises(ValueError, match="two or more tasks"):
        pcgrad_backward({"a": model.terms(torch.ones(1, 3))["a"]}, list(model.parameters()), abs)


def test_gradient_surgery_is_a_checked_choice():
    assert LossWeights().gradient_surgery == "none"
    with pytest.raises(ConfigError, match=r"loss\.gradient_surgery must be one of none, pcgrad"):
        LossWeights(gradient_surgery="gradnorm")


TINY = {
    "arch": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def _module_and_batch(data_root, surgery: str) -> tuple[CausalLitModule, DataLoader]:
    L.seed_everything(0)
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", TINY))
    corpus = load_cnc(data_root, download=False)
    causal = [e for e in corpus.train if e.relations and len(e.words) < 30][:3]
    other = [e for e in corpus.train if e.seq_label == 0 and len(e.words) < 30][:3]
    items = [encode_example(e, tokenizer, 64, 2) for e in causal + other]
    loader = DataLoader(EncodedDataset(items), batch_size=6, collate_fn=CausalCollator(tokenizer))
    module = CausalLitModule(
        network={
            "name_or_path": "tiny-bert",
            "tiny": TINY,
            "span_heads": 2,
            "dropout": 0.0,
            "head_dropout": 0.0,
            "vocab_size": len(tokenizer),
        },
        loss={"alpha": 3.0, "gradient_surgery": surgery},
        optim={"warmup_ratio": 0.0},
    )
    return module, loader


class _KeepGradients(L.Callback):
    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


def _first_step_gradients(module: CausalLitModule, loader: DataLoader, **trainer) -> dict:
    kept = _KeepGradients()
    L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=0,
        limit_val_batches=0,
        callbacks=[kept],
        **trainer,
    ).fit(module, train_dataloaders=loader)
    return kept.grads


@pytest.mark.parametrize("accumulate", [1, 2])
def test_a_pcgrad_training_step_steps_along_the_projected_gradients(data_root, accumulate):
    """The module's backward pass under ``pcgrad`` gives, per parameter, the PCGrad gradient
    computed here from each task's own gradient; the plain sum is what ``none`` gives."""
    module, loader = _module_and_batch(data_root, "pcgrad")
    reference = copy.deepcopy(module)
    batch = next(iter(loader))
    reference.train()
    losses = reference.compute_losses(reference(batch), batch)
    assert set(losses.terms) == {"seq", "span", "pair"} and not losses.labelled["pair"]
    params = [p for p in reference.parameters() if p.requires_grad]
    names = [n for n, p in reference.named_parameters() if p.requires_grad]
    g_seq, g_span = (
        torch.autograd.grad(losses.terms[t], params, retain_graph=True, allow_unused=True)
        for t in ("seq", "span")
    )
    shared = [
        i
        for i, (a, b) in enumerate(zip(g_seq, g_span, strict=True))
        if a is not None and b is not None
    ]
    assert any(names[i].startswith("network.backbone") for i in shared)
    flat = torch.stack([torch.cat([g[i].reshape(-1) for i in shared]) for g in (g_seq, g_span)])
    a, b = flat
    inner = a @ b
    step = a - inner.clamp(max=0) / (b @ b) * b + b - inner.clamp(max=0) / (a @ a) * a
    # a batch repeated `accumulate` times: the accumulated gradient is the single one
    loader = DataLoader([batch] * accumulate, batch_size=None, collate_fn=lambda b: b)
    got = _first_step_gradients(module, loader, accumulate_grad_batches=accumulate)
    got_shared = torch.cat([got[names[i]].reshape(-1) for i in shared])
    assert torch.allclose(got_shared, step, rtol=1e-4, atol=1e-7)
    assert inner < 0  # the tasks conflict on this batch: surgery changed the step
    assert not torch.allclose(got_shared, a + b, rtol=1e-3, atol=1e-6)
    # the sequence head is the sequence task's alone: its plain gradient
    head = [i for i, n in enumerate(names) if n.startswith("network.seq_head.")]
    assert head and not set(head) & set(shared)
    for i in head:
        assert torch.allclose(got[names[i]], g_seq[i], rtol=1e-4, atol=1e-7)


def test_pcgrad_is_refused_on_more_than_one_device(data_root):
    module, _ = _module_and_batch(data_root, "pcgrad")
    module.trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    with pytest.raises(ConfigError, match="runs on one device, not 2"):
        module.setup("fit")


@pytest.mark.parametrize("precision", ["32-true", "16-mixed"])
def test_a_pcgrad_run_trains_end_to_end_and_logs_how_the_tasks_conflict(
    train_config, tmp_path, precision
):
    """The Hydra config end to end, also under fp16's loss scaler (the terms are scaled as
    Lightning scales the total)."""
    overrides = ("loss.gradient_surgery=pcgrad", "alpha=3", "trainer.log_every_n_steps=1")
    metrics = train(train_config(*overrides, f"trainer.precision={precision}"))
    assert "test/span_f1" in metrics
    logged = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "train/gradient_cosine_seq_span" in logged
