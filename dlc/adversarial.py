"""The inner maximisation of DLC's min-max problem: projected gradient ascent on the perturbation.

The public DLC/PRISE code replaces the worst-case perturbation by random sampling (plus a sum or
max over samples). :func:`projected_ascent` does the maximisation literally: starting from the
sampled ``delta``, it takes normalised gradient-ascent steps on the hinge w.r.t. ``delta`` only
(where every hinge term is inactive, on the largest margin instead, so the search can start),
projects back into the space's sampling region after each step, and returns, per (sample,
example), the best iterate seen (the start included), so the result never has a smaller hinge
than the start.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dlc.spaces import Space

__all__ = ["projected_ascent"]


def projected_ascent(objective: Callable[[Tensor], Tensor], delta: Tensor, space: Space,
                     target: Tensor, steps: int, step_size: float) -> Tensor:
    """Maximise ``objective`` over ``delta`` by projected, normalised gradient ascent.

    Args:
        objective: maps ``delta [S, B, *tangent]`` to a per-(sample, example) value ``[S, B]``
            to maximise (``dlc.functional.ascent_objective``: the hinge, or the largest margin where
            the hinge is 0). Entry ``(s, b)`` must depend on ``delta[s, b]`` only.
        delta: the starting perturbations ``[S, B, *tangent]``.
        space: supplies ``radius(target) [B]`` and ``project``.
        target: the ground truth ``[B, *event]``.
        steps: number of ascent steps (the objective is evaluated ``steps + 1`` times).
        step_size: step length as a fraction of the space radius; each ``(s, b)`` moves by
            ``step_size * radius[b]`` along its normalised gradient.

    Returns:
        The best ``delta [S, B, *tangent]`` found per ``(s, b)``, detached. Gradients are taken
        with ``torch.autograd.grad`` w.r.t. ``delta`` only, so nothing accumulates in ``.grad``.
    """
    tangent_ndim = delta.ndim - 2
    expand = (...,) + (None,) * tangent_ndim
    radius = space.radius(target).to(delta)[None]  # [1, B]
    current = delta.detach()
    best, best_value = current, None
    for step in range(steps + 1):
        current = current.detach().requires_grad_(step < steps)
        value = objective(current)  # [S, B]
        with torch.no_grad():  # bookkeeping only; h itself ran with gradients enabled
            if best_value is None:
                best, best_value = current.detach(), value.detach()
            else:
                better = value.detach() > best_value
                best = torch.where(better[expand], current.detach(), best)
                best_value = torch.where(better, value.detach(), best_value)
        if step == steps or not value.requires_grad:
            break
        (grad,) = torch.autograd.grad(value.sum(), current, allow_unused=True)
        if grad is None:  # the hinge does not depend on delta: nothing to climb
            break
        with torch.no_grad():
            # unit ascent direction per (s, b); a zero gradient (a flat hinge, e.g. a clamped
            # border) means no step there, never 0 * (radius / tiny) = 0 * inf = NaN
            norm = grad.flatten(2).norm(dim=-1)  # [S, B]
            unit = torch.where((norm > 0)[expand], grad / norm.clamp_min(1e-30)[expand],
                               torch.zeros_like(grad))
            current = space.project(target, current + (step_size * radius)[expand] * unit)
    return best.detach()
