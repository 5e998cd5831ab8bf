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

from causalmine.model.losses import TASKS, LossBreakdown


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


class _Owner:
    """Hands out gradients that may be written in place or kept as ``.grad``: a gradient
    itself the first time its memory is seen and when it is contiguous (autograd's usual
    result), else a copy. Autograd may return one tensor for two parameters, an expanded one
    (stride 0), or slices of one buffer (cuDNN's LSTM weights)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def __call__(self, gradient: torch.Tensor) -> torch.Tensor:
        storage = gradient.untyped_storage().data_ptr()
        if not gradient.is_contiguous() or storage in self.seen:
            gradient = gradient.clone(memory_format=torch.contiguous_format)
            storage = gradient.untyped_storage().data_ptr()
        self.seen.add(storage)
        return gradient


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


def trained_terms(losses: LossBreakdown) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The shares of the tasks ``losses``' batch trains, in ``TASKS`` order, and the summed
    share of the others (``silent`` for :func:`pcgrad_backward`; None when every task trains).
    One host synchronisation."""
    trains = torch.stack([losses.trains[task] for task in TASKS]).tolist()
    trained = {task: losses.terms[task] for task, on in zip(TASKS, trains, strict=True) if on}
    untrained = [losses.terms[task] for task in TASKS if task not in trained]
    return trained, torch.stack(untrained).sum() if untrained else None


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
    ``silent``, the share of the tasks the batch does not train (its gradients are zeros),
    goes back into the parameters no trained task reaches (their heads), so that these get
    zero gradients as in the plain pass without counting as reached.
    ``scale`` maps a term to the loss that is backpropagated (gradient accumulation, a loss
    scaler); gradients add to what ``.grad`` holds, as ``backward`` does. Returns the tasks'
    gradient cosines in the projected parameters (:func:`cosine_similarities`)."""
    if len(terms) < 2:
        raise ValueError(f"gradient surgery needs two or more tasks, got {sorted(terms)}")
    losses = list(terms.values())
    per_task: list[list[torch.Tensor | None]] = []
    silent_grads: dict[int, torch.Tensor | None] = {}
    for index, loss in enumerate(losses):
        last = index == len(losses) - 1
        if last and silent is not None:
            # before the last pass frees the graph: the untrained tasks' heads (the parameters
            # no earlier task reached; a pass from their share walks only those heads)
            candidates = [k for k in range(len(parameters)) if all(g[k] is None for g in per_task)]
            if candidates:
                zeros = torch.autograd.grad(
                    scale(silent),
                    [parameters[k] for k in candidates],
                    retain_graph=True,
                    allow_unused=True,
                )
                silent_grads = dict(zip(candidates, zeros, strict=True))
        grads = torch.autograd.grad(
            scale(loss), parameters, retain_graph=not last, allow_unused=True
        )
        per_task.append(list(grads))
    # before anything is written in place: one tensor per gradient, with memory of its own
    owned = _Owner()
    per_task = [[None if g is None else owned(g) for g in grads] for grads in per_task]
    separate = {id(p) for p in unprojected}
    reached = [sum(grads[k] is not None for grads in per_task) for k in range(len(parameters))]
    shared = [k for k, p in enumerate(parameters) if reached[k] > 1 and id(p) not in separate]
    cosines: dict[str, torch.Tensor] = {}
    # zero gradients for the heads only untrained tasks reach, as the plain pass gives them;
    # they neither count as reached nor enter the projection
    gradients: dict[int, torch.Tensor] = {
        k: owned(g) for k, g in silent_grads.items() if g is not None and reached[k] == 0
    }
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
                    step = grads[k].mul_(weight)
                else:
                    step.addcmul_(grads[k], weight)
                grads[k] = None
            gradients[k] = step  # type: ignore[assignment]
    for k in range(len(parameters)):
        present = [grads[k] for grads in per_task if grads[k] is not None]
        if present and k not in gradients:
            gradients[k] = present[0] if len(present) == 1 else torch.stack(present).sum(0)
    for k, grad in gradients.items():
        parameter = parameters[k]
        if parameter.grad is None:
            parameter.grad = grad.to(parameter.dtype)
        else:
            parameter.grad.add_(grad.to(parameter.grad.dtype))
    return cosines
