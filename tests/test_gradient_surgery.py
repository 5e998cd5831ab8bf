"""Gradient surgery (``loss.gradient_surgery=pcgrad``, Yu et al. 2020): the projection, the
backward pass that applies it, and the training step that uses it."""

from __future__ import annotations

import copy
import csv

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


def _sequential_pcgrad(gradients: torch.Tensor) -> torch.Tensor:
    """The paper's loop, vector by vector: row i against every other original row in order."""
    rows = []
    for i, row in enumerate(gradients):
        row = row.clone()
        for j, other in enumerate(gradients):
            if j != i and row @ other < 0:
                row = row - (row @ other) / (other @ other) * other
        rows.append(row)
    return torch.stack(rows)


def test_three_tasks_project_one_other_task_after_another_in_order():
    g = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 1.0]])
    expected = _sequential_pcgrad(g)
    # row 0 projected along g1 (g0 . g1 = -1, |g1|^2 = 2), then along g2
    first = g[0] + 0.5 * g[1]
    assert torch.allclose(expected[0], first - (first @ g[2]) / (g[2] @ g[2]) * g[2])
    assert torch.allclose(project_conflicting(g), expected)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda t: st.lists(
            st.lists(
                st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32),
                min_size=5,
                max_size=5,
            ),
            min_size=t,
            max_size=t,
        )
    )
)
def test_the_gram_matrix_projection_is_the_papers_loop(rows):
    gradients = torch.tensor(rows, dtype=torch.float64)
    scale = float(gradients.norm(dim=1).max()) + 1.0
    assert torch.allclose(
        project_conflicting(gradients), _sequential_pcgrad(gradients), atol=1e-9 * scale**3
    )


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
    g = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.0, 0.0]])
    cosines = cosine_similarities(g @ g.T, ["seq", "span", "pair"])
    assert set(cosines) == {"seq_span", "seq_pair", "span_pair"}
    assert cosines["seq_span"].item() == pytest.approx(-1.0)
    assert cosines["seq_pair"].item() == 0.0


class _TwoTasks(nn.Module):
    """A shared layer under two heads, the shape of the unified network, and a third head for
    a task the batch does not train. The heads start equal, with outputs near 1, and one task
    pulls them to 0, the other to 3: the tasks conflict."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(3, 4)
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)
        self.head_c = nn.Linear(4, 1)
        self.log_variances = nn.Parameter(torch.tensor([0.3, -0.2]))
        with torch.no_grad():
            self.head_a.weight.mul_(0.1)
            self.head_a.bias.fill_(1.0)
            self.head_b.load_state_dict(self.head_a.state_dict())

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.shared(x))
        s = self.log_variances
        return {
            "a": torch.exp(-s[0]) * self.head_a(h).pow(2).mean() + s[0] / 2,
            "b": torch.exp(-s[1]) * (self.head_b(h) - 3).pow(2).mean() + s[1] / 2,
            "c": 0.0 * self.head_c(h).mean(),  # untrained: zero gradients
        }


def test_the_backward_pass_projects_the_shared_layer_and_leaves_the_rest_as_a_plain_pass():
    torch.manual_seed(0)
    model, x = _TwoTasks(), torch.randn(5, 3)
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())
    grads = {
        task: dict(
            zip(
                names,
                torch.autograd.grad(term, params, retain_graph=True, allow_unused=True),
                strict=True,
            )
        )
        for task, term in model.terms(x).items()
    }
    g_a, g_b = (
        torch.cat([grads[t]["shared.weight"].reshape(-1), grads[t]["shared.bias"]]) for t in "ab"
    )
    inner = g_a @ g_b
    assert inner < 0
    expected = (g_a - inner / (g_b @ g_b) * g_b) + (g_b - inner / (g_a @ g_a) * g_a)

    model.shared.weight.grad = torch.ones_like(model.shared.weight)  # accumulated before
    terms = model.terms(x)
    cosines = pcgrad_backward(
        {"a": terms["a"], "b": terms["b"]},
        params,
        scale=lambda t: t,
        unprojected=[model.log_variances],
        silent=terms["c"],
    )
    got = torch.cat([model.shared.weight.grad.reshape(-1) - 1, model.shared.bias.grad])
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, g_a + g_b, atol=1e-3)  # not the plain sum
    assert torch.equal(model.head_a.weight.grad, grads["a"]["head_a.weight"])
    assert torch.equal(model.head_b.bias.grad, grads["b"]["head_b.bias"])
    # each task's log variance gets its own task's gradient, not a projected one
    own = grads["a"]["log_variances"] + grads["b"]["log_variances"]
    assert torch.allclose(model.log_variances.grad, own)
    # the untrained task's head gets zeros, as in the plain pass (AdamW still decays it)
    assert torch.equal(model.head_c.weight.grad, torch.zeros_like(model.head_c.weight))
    assert cosines["a_b"].item() == pytest.approx(float(inner / (g_a.norm() * g_b.norm())))


def test_a_gradient_autograd_returns_for_two_parameters_is_not_written_twice():
    """``h * (p1 + p2)``: autograd hands back one tensor for p1 and p2."""
    torch.manual_seed(0)
    w, p1, p2 = (
        nn.Parameter(torch.randn(3, 3)),
        nn.Parameter(torch.randn(3)),
        nn.Parameter(torch.randn(3)),
    )
    x = torch.randn(4, 3)

    def terms() -> dict[str, torch.Tensor]:
        h = torch.tanh(x @ w) * (p1 + p2)
        return {"a": h[:, 0].pow(2).mean(), "b": (h[:, 0] - 3).pow(2).mean()}

    params = [w, p1, p2]
    flat = torch.stack(
        [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(t, params, retain_graph=True)])
            for t in terms().values()
        ]
    )
    expected = _sequential_pcgrad(flat).sum(dim=0)
    pcgrad_backward(terms(), params, scale=lambda t: t)
    got = torch.cat([p.grad.reshape(-1) for p in params])
    assert torch.allclose(got, expected, atol=1e-5)
    assert p1.grad is not p2.grad


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


def _module_and_loader(
    data_root, surgery: str, seed: int = 0, **settings: dict
) -> tuple[CausalLitModule, DataLoader]:
    L.seed_everything(seed)
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", TINY))
    corpus = load_cnc(data_root, download=False)
    causal = [e for e in corpus.train if e.relations and len(e.words) < 30][:3]
    other = [e for e in corpus.train if e.seq_label == 0 and len(e.words) < 30][:3]
    items = [encode_example(e, tokenizer, 64, 2) for e in causal + other]
    loader = DataLoader(EncodedDataset(items), batch_size=6, collate_fn=CausalCollator(tokenizer))
    network = {
        "name_or_path": "tiny-bert",
        "tiny": TINY,
        "span_heads": 2,
        "dropout": 0.0,
        "head_dropout": 0.0,
        "vocab_size": len(tokenizer),
        "lstm": {"enabled": True, "hidden": 16},
    }
    module = CausalLitModule(
        network=network | settings.get("network", {}),
        loss={"alpha": 3.0, "gradient_surgery": surgery} | settings.get("loss", {}),
        optim={"warmup_ratio": 0.0},
        freeze=settings.get("freeze"),
    )
    return module, loader


class _KeepGradients(L.Callback):
    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        # copies: a fused step under a loss scaler unscales the gradients in place
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


def _reference_step(
    module: CausalLitModule, batch: dict, held: str | None
) -> tuple[dict, dict, float]:
    """PCGrad's step for the sequence and span tasks, from each task's own gradient (the
    two-task formula), on a copy of ``module``; parameters named ``held*`` do not step. Also
    the plain sum, for comparison, keyed by parameter name as the step is, and the cosine of
    the two tasks' gradients in the parameters they share."""
    module = copy.deepcopy(module).train()
    losses = module.compute_losses(module(batch), batch)
    assert losses.trains["seq"] and losses.trains["span"] and not losses.trains["pair"]
    named = [
        (n, p)
        for n, p in module.named_parameters()
        if p.requires_grad and not (held and n.startswith(held))
    ]
    names, params = [n for n, _ in named], [p for _, p in named]
    seq_grads, span_grads, pair_grads = (
        torch.autograd.grad(losses.terms[task], params, retain_graph=True, allow_unused=True)
        for task in ("seq", "span", "pair")
    )
    shared = [
        i
        for i, (a, b) in enumerate(zip(seq_grads, span_grads, strict=True))
        if a is not None and b is not None and names[i] != "loss_log_variances"
    ]
    a, b = (torch.cat([g[i].reshape(-1) for i in shared]) for g in (seq_grads, span_grads))
    inner = a @ b
    step = a - inner.clamp(max=0) / (b @ b) * b + b - inner.clamp(max=0) / (a @ a) * a
    expected, plain, offset = {}, {}, 0
    for i, name in enumerate(names):
        present = [g[i] for g in (seq_grads, span_grads) if g[i] is not None]
        if present:
            plain[name] = sum(present)
        if i in shared:
            expected[name] = step[offset : offset + params[i].numel()].view_as(params[i])
            offset += params[i].numel()
        elif present:
            expected[name] = plain[name]
        elif pair_grads[i] is not None:  # the pair head, untrained here: zeros
            expected[name] = plain[name] = pair_grads[i]
    return expected, plain, float(inner / (a.norm() * b.norm()))


@pytest.mark.parametrize(
    ("variant", "settings", "accumulate"),
    [
        ("default", {}, 1),
        ("accumulated", {}, 2),
        ("learned weights", {"loss": {"weighting": "uncertainty"}}, 1),
        ("gradual unfreezing", {"freeze": {"policy": "gradual"}}, 1),
        # the pooler's dense layer is the sequence and pair heads', not the spans'
        ("pooler", {"network": {"pooling": "pooler"}}, 1),
    ],
)
def test_a_pcgrad_training_step_steps_along_the_projected_gradients(
    data_root, variant, settings, accumulate
):
    """Every parameter's gradient at the optimizer step is PCGrad's, computed here from each
    task's own gradient: projected where both tasks reach, the task's own elsewhere, zeros for
    the pair head (no pair labels), nothing for a backbone that gradual unfreezing holds."""
    module, loader = _module_and_loader(data_root, "pcgrad", **settings)
    batch = next(iter(loader))
    held = "network.backbone." if variant == "gradual unfreezing" else None
    expected, plain, cosine = _reference_step(module, batch, held)
    # the same batch `accumulate` times: the accumulated gradient is the single one
    repeated = DataLoader([batch] * accumulate, batch_size=None, collate_fn=lambda b: b)
    got = _first_step_gradients(module, repeated, accumulate_grad_batches=accumulate)
    assert set(got) == set(expected)
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, rtol=1e-4, atol=1e-7), name
    assert not got["network.pair_head.out.weight"].any()
    assert any(n.startswith("network.lstm.") for n in expected)
    if variant == "pooler":  # reached by the sequence task alone: its own gradient
        dense = [n for n in expected if n.startswith("network.pooling.")]
        assert dense and all(torch.allclose(got[n], plain[n], rtol=1e-4, atol=1e-7) for n in dense)
    differs = any(not torch.allclose(got[n], plain[n], rtol=1e-3, atol=1e-6) for n in expected)
    if held:
        # the tasks agree in the reader (they conflict in the held backbone, cosine -0.035):
        # no surgery, although a projection over the backbone's gradients too would change it
        assert cosine > 0 and not differs
        assert not any(n.startswith(held) for n in got)
    else:
        assert cosine < 0 and differs  # the tasks conflict on this batch: surgery acts


def test_pcgrad_under_the_fp16_loss_scaler_scales_each_task_as_lightning_scales_the_total(
    data_root,
):
    """Under fp16 the gradients reach the fused optimizer still scaled (it unscales them
    itself): PCGrad's step times the scale. On a CPU, Lightning's "16-mixed" is bf16 without a
    scaler, so the plugin is given explicitly."""
    from lightning.pytorch.plugins import MixedPrecision

    module, loader = _module_and_loader(data_root, "pcgrad")
    batch = next(iter(loader))
    expected, _, _ = _reference_step(module, batch, None)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    got = _first_step_gradients(
        module,
        DataLoader([batch], batch_size=None, collate_fn=lambda b: b),
        plugins=[MixedPrecision("16-mixed", "cpu", scaler)],
    )
    flat_got = torch.cat([got[n].reshape(-1) for n in expected])
    flat_expected = torch.cat([expected[n].reshape(-1) for n in expected])
    assert torch.nn.functional.cosine_similarity(flat_got, flat_expected, dim=0) > 0.999
    assert (flat_got.norm() / flat_expected.norm()).item() == pytest.approx(1024.0, rel=0.01)


def test_pcgrad_is_refused_on_more_than_one_device(data_root):
    module, _ = _module_and_loader(data_root, "pcgrad")
    module.trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    with pytest.raises(ConfigError, match="runs on one device, not 2"):
        module.setup("fit")


def test_a_pcgrad_run_trains_end_to_end_and_logs_how_the_tasks_conflict(train_config, tmp_path):
    """The Hydra config end to end; the first epoch of a warm-up trains spans alone (the plain
    backward pass), the second both tasks with surgery."""
    overrides = ("loss.gradient_surgery=pcgrad", "alpha=3", "trainer.log_every_n_steps=1")
    metrics = train(train_config(*overrides, "loss.seq_start_epoch=1", "trainer.max_epochs=2"))
    assert "test/span_f1" in metrics
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    logged = {int(r["epoch"]) for r in rows if r.get("train/gradient_cosine_seq_span")}
    assert logged == {1}
