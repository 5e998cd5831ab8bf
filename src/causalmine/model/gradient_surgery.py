"""Gradient surgery for the unified loss (``loss.gradient_surgery=pcgrad``).

PCGrad (Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task Learning",
NeurIPS 2020): when two tasks' gradients conflict (a negative inner product), each loses its
component along the other before they are added, so that no task's step undoes another's.

Written here because no maintained package does it for a PyTorch module trained by Lightning's
automatic optimization (the reference implementations wrap an optimizer and call ``backward``
themselves). Two choices differ from the paper's code, both for this setting:

- Only the parameters that two or more tasks reach (the backbone and the BiLSTM reader) are
  projected; each head keeps its own task's gradient. The inner products are the same either
  way (a head's gradient is zero for every other task), but the paper's code also adds a
  multiple of one task's head gradient to another's.
- The other tasks are visited in a fixed order (``losses.TASKS``), not a random one, so that a
  run is reproducible and resumes exactly. With two tasks, as CNC trains, the order makes no
  difference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def project_conflicting(gradients: torch.Tensor) -> torch.Tensor:
    """PCGrad's projection of the task gradients ``[tasks, n]``, row by row: task ``i``'s
    gradient loses, one other task ``j`` after another, its component along ``j``'s original
    gradient whenever their inner product is negative. Returns the projected rows; their sum is
    the step. No host synchronisation: the conditions are tensor operations."""
    squared_norms = (gradients * gradients).sum(dim=1)
    projected = []
    for i in range(gradients.shape[0]):
        row = gradients[i]
        for j in range(gradients.shape[0]):
            if j == i:
                continue
            inner = torch.dot(row, gradients[j])
            # a zero gradient conflicts with nothing (and must not divide by zero)
            scale = torch.where(
                squared_norms[j] > 0,
                inner.clamp(max=0) / squared_norms[j].clamp(min=torch.finfo(row.dtype).tiny),
                torch.zeros_like(inner),
            )
            row = row - scale * gradients[j]
        projected.append(row)
    return torch.stack(projected)


def cosine_similarities(gradients: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The cosine of every pair of task gradients ``[tasks, n]``, keyed ``"<a>_<b>"`` (0 where a
    gradient is zero): how much the tasks conflict, which is what PCGrad acts on."""
    unit = gradients / gradients.norm(dim=1, keepdim=True).clamp(min=1e-12)
    return {
        f"{names[i]}_{names[j]}": torch.dot(unit[i], unit[j])
        for i in range(len(names))
        for j in range(i + 1, len(names))
    }


def pcgrad_backward(
    terms: dict[str, torch.Tensor],
    parameters: Sequence[nn.Parameter],
    scale: Callable[[torch.Tensor], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Backpropagate the task ``terms`` (two or more, each a task's weighted share of the
    loss) into ``parameters``' ``.grad`` with PCGrad: one backward pass per task, the shared
    parameters' gradients projected (:func:`project_conflicting`) and summed, every other
    parameter's gradient as the plain backward pass would give it. ``scale`` maps a term to the
    loss that is backpropagated (gradient accumulation and a loss scaler); gradients add to
    what ``.grad`` holds, as ``backward`` does. Returns the tasks' gradient cosines in the
    shared parameters (:func:`cosine_similarities`)."""
    if len(terms) < 2:
        raise ValueError(f"gradient surgery needs two or more tasks, got {sorted(terms)}")
    per_task = [
        torch.autograd.grad(
            scale(term), parameters, retain_graph=index < len(terms) - 1, allow_unused=True
        )
        for index, term in enumerate(terms.values())
    ]
    reached = [sum(grads[p] is not None for grads in per_task) for p in range(len(parameters))]
    shared = [p for p, count in enumerate(reached) if count > 1]
    combined: dict[int, torch.Tensor] = {}
    cosines: dict[str, torch.Tensor] = {}
    if shared:
        flat = torch.stack(
            [
                torch.cat(
                    [
                        (g[p] if g[p] is not None else torch.zeros_like(parameters[p])).reshape(-1)
                        for p in shared
                    ]
                )
                for g in per_task
            ]
        )
        cosines = cosine_similarities(flat, list(terms))
        step = project_conflicting(flat).sum(dim=0)
        offset = 0
        for p in shared:
            size = parameters[p].numel()
            combined[p] = step[offset : offset + size].view_as(parameters[p])
            offset += size
    for p, count in enumerate(reached):
        if count == 1:
            combined[p] = next(g[p] for g in per_task if g[p] is not None)
    for p, grad in combined.items():
        parameter = parameters[p]
        if parameter.grad is None:
            parameter.grad = grad.to(parameter.dtype).clone()
        else:
            parameter.grad.add_(grad.to(parameter.grad.dtype))
    return cosines
