"""Gradient surgery for the unified loss (``loss.gradient_surgery=pcgrad``).

PCGrad (Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task Learning",
NeurIPS 2020): when two tasks' gradients conflict (a negative inner product), each loses its
component along the other before they are added, so that no task's step undoes another's.

Written here because no maintained package does it for a PyTorch module trained by Lightning's
automatic optimization (the reference implementations wrap an optimizer and call ``backward``
themselves). It differs from the paper's code in three ways, all for this setting:

- Only the parameters that two or more tasks reach (the backbone and the BiLSTM reader) are
  projected, as in LibMTL's PCGrad; each head keeps its own task's gradient. The paper's code
  projects the whole parameter vector, so its norms include the heads' gradients and it adds
  a multiple of one task's head gradient to another's.
- The other tasks are visited in a fixed order (``losses.TASKS``), not a random one, so that a
  run is reproducible and resumes exactly. With two tasks, as CNC trains, the order makes no
  difference.
- With gradient accumulation the surgery acts on each micro-batch's gradients, which are then
  added; it is not PCGrad on the accumulated batch.

The projection is computed on the tasks' Gram matrix (``T x T``, summed parameter by
parameter), and the step is then formed in place in the gradients autograd returned: no
concatenated copy of the encoder's gradients is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def projection_coefficients(gram: torch.Tensor) -> torch.Tensor:
    """PCGrad on the tasks' Gram matrix ``gram[i, j] = g_i . g_j``: the coefficients ``C``
    ``[T, T]`` of the projected gradients ``g'_i = sum_k C[i, k] g_k``. Row ``i`` starts as
    ``g_i`` and, one other task ``j`` after another, loses its component along ``j``'s original
    gradient whenever their inner product is negative (a zero gradient conflicts with nothing).
    No host synchronisation: the conditions are tensor operations."""
    tasks = gram.shape[0]
    unit = torch.eye(tasks, dtype=gram.dtype, device=gram.device)
    tiny = torch.finfo(gram.dtype).tiny
    rows = []
    for i in range(tasks):
        row = unit[i]
        for j in range(tasks):
            if j == i:
                continue
            inner = row @ gram[:, j]
            scale = torch.where(
                gram[j, j] > 0,
                inner.clamp(max=0) / gram[j, j].clamp(min=tiny),
                torch.zeros_like(inner),
            )
            row = row - scale * unit[j]
        rows.append(row)
    return torch.stack(rows)


def project_conflicting(gradients: torch.Tensor) -> torch.Tensor:
    """PCGrad's projected task gradients, row by row, from the gradients ``[tasks, n]``
    (:func:`projection_coefficients`); their sum is the step."""
    return projection_coefficients(gradients @ gradients.T) @ gradients


def cosine_similarities(gram: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """The cosine of every pair of task gradients from their Gram matrix, keyed ``"<a>_<b>"``
    (0 where a gradient is zero): how much the tasks conflict, which is what PCGrad acts on."""
    norms = gram.diagonal().clamp(min=0).sqrt()
    return {
        f"{names[i]}_{names[j]}": gram[i, j] / (norms[i] * norms[j]).clamp(min=1e-30)
        for i in range(len(names))
        for j in range(i + 1, len(names))
    }


def _owned(gradient: torch.Tensor) -> torch.Tensor:
    """``gradient`` itself when it owns its memory (autograd's usual result), else a copy: an
    expanded or viewed gradient must not be written in place."""
    if gradient.is_contiguous() and gradient._base is None:
        return gradient
    return gradient.clone()


def _gram_matrix(per_task: list[list[torch.Tensor | None]]) -> torch.Tensor:
    """``gram[i, j]``: the inner product of task ``i``'s and task ``j``'s gradients, summed
    over the parameters (a missing gradient is zero), in float32, without concatenating them."""
    tasks = len(per_task)
    device = next(g.device for grads in per_task for g in grads if g is not None)
    entries = {}
    for i in range(tasks):
        for j in range(i, tasks):
            dots = [
                torch.dot(a.reshape(-1).float(), b.reshape(-1).float())
                for a, b in zip(per_task[i], per_task[j], strict=True)
                if a is not None and b is not None
            ]
            entries[i, j] = entries[j, i] = (
                torch.stack(dots).sum() if dots else torch.zeros((), device=device)
            )
    return torch.stack([torch.stack([entries[i, j] for j in range(tasks)]) for i in range(tasks)])


def pcgrad_backward(
    terms: dict[str, torch.Tensor],
    parameters: Sequence[nn.Parameter],
    scale: Callable[[torch.Tensor], torch.Tensor],
    unprojected: Sequence[nn.Parameter] = (),
    silent: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Backpropagate the task ``terms`` (two or more, each a task's weighted share of the
    loss) into ``parameters``' ``.grad`` with PCGrad: one backward pass per task; the gradients
    of the parameters two or more tasks reach are projected (:func:`projection_coefficients`)
    and summed; every other parameter gets the sum of its tasks' gradients, as the plain
    backward pass would give it. ``unprojected`` parameters are never projected although every
    task reaches them (their entries belong to one task each: the learned log variances).
    ``silent``, the share of the tasks the batch does not train (its gradients are zeros), goes
    back with the last task so that their heads get zero gradients, as in the plain pass.
    ``scale`` maps a term to the loss that is backpropagated (gradient accumulation, a loss
    scaler); gradients add to what ``.grad`` holds, as ``backward`` does. Returns the tasks'
    gradient cosines in the projected parameters (:func:`cosine_similarities`)."""
    if len(terms) < 2:
        raise ValueError(f"gradient surgery needs two or more tasks, got {sorted(terms)}")
    losses = list(terms.values())
    if silent is not None:
        losses[-1] = losses[-1] + silent
    per_task = [
        list(
            torch.autograd.grad(
                scale(loss), parameters, retain_graph=index < len(losses) - 1, allow_unused=True
            )
        )
        for index, loss in enumerate(losses)
    ]
    separate = {id(p) for p in unprojected}
    reached = [sum(grads[k] is not None for grads in per_task) for k in range(len(parameters))]
    shared = [k for k, p in enumerate(parameters) if reached[k] > 1 and id(p) not in separate]
    cosines: dict[str, torch.Tensor] = {}
    gradients: dict[int, torch.Tensor] = {}
    if shared:
        gram = _gram_matrix([[grads[k] for k in shared] for grads in per_task])
        cosines = cosine_similarities(gram, list(terms))
        weights = projection_coefficients(gram).sum(dim=0)  # step = sum_t weights[t] g_t
        for k in shared:
            # in place, in the per-task gradients autograd just made: no new full-size buffer
            step = None
            for grads, weight in zip(per_task, weights, strict=True):
                if grads[k] is None:
                    continue
                if step is None:
                    step = _owned(grads[k]).mul_(weight)
                else:
                    step.addcmul_(grads[k], weight)
                grads[k] = None
            gradients[k] = step  # type: ignore[assignment]
    for k in range(len(parameters)):
        if k in gradients or reached[k] == 0:
            continue
        present = [grads[k] for grads in per_task if grads[k] is not None]
        gradients[k] = present[0] if len(present) == 1 else torch.stack(present).sum(dim=0)
    for k, grad in gradients.items():
        parameter = parameters[k]
        if parameter.grad is None:
            parameter.grad = grad.to(parameter.dtype)
        else:
            parameter.grad.add_(grad.to(parameter.grad.dtype))
    return cosines
