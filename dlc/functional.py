"""Functional API of DLC: the maths of :class:`dlc.StarConvexLoss` as flat functions.

For a per-sample loss ``h`` of the target with ground truth ``w*`` and perturbations ``delta_s``
(``s = 1..S``), ``w~ = retract(w*, delta, 1)``, ``w_l = retract(w*, delta, lam)``,
``n2 = sqnorm(w*, delta)``, the margins (hinge arguments before ``relu``) are::

    m1 = h* - h_l                      (+ mu/2 * lam^2 * n2 with t1_margin: PRISE's option1)
    m2 = h* - h~ + mu/2 * n2
    m3 = h_l - (1 - lam) h* - lam h~ + mu/2 * lam (1 - lam) n2

and ``T_i = relu(m_i)``. A positive margin is a violated inequality of mu-strong
star-convexity of ``h`` around ``w*``. ``StarConvexLoss`` is a thin module over these functions
(as kornia's modules are over ``kornia.*.functional``); ``dlc.landscape`` evaluates ``h`` through
:func:`loss_at` too.

Shapes: ``B`` the batch, ``S`` the perturbations per example, ``K`` stacked targets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dlc.spaces import Space

__all__ = ["LossFn", "TERMS", "loss_at", "star_convex_points", "margins", "hinge_terms",
           "aggregate_hinge", "ascent_objective"]

#: A per-sample loss of the target: ``[K, B, *event] -> [K, B]``.
LossFn = Callable[[Tensor], Tensor]

#: The three hinge terms, in order.
TERMS = ("t1", "t2", "t3")


def loss_at(h: LossFn, points: Tensor, chunk_size: int | None = None) -> Tensor:
    """``h`` at ``points [K, B, *event]`` -> ``[K, B]``, in chunks of ``chunk_size`` along K.

    Raises ``ValueError`` if ``h`` does not return a ``[K, B]`` tensor.
    """
    k, b = points.shape[:2]
    chunks = (points,) if chunk_size is None or chunk_size >= k else points.split(chunk_size)
    values = []
    for chunk in chunks:
        value = h(chunk)
        expected = (chunk.shape[0], b)
        if not isinstance(value, Tensor) or tuple(value.shape) != expected:
            got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ValueError(f"h must return [K, B] = {list(expected)} per-sample losses, "
                             f"got {got}")
        values.append(value)
    return values[0] if len(values) == 1 else torch.cat(values)


def star_convex_points(space: Space, target: Tensor, delta: Tensor, lam: Tensor | float) -> Tensor:
    """The stacked targets ``[2S + 1, B, *event]`` = ``[w*, w~_1..S, w_l_1..S]`` for
    ``target [B, *event]`` and ``delta [S, B, *tangent]``."""
    return torch.cat([target[None], space.retract(target, delta, 1.0),
                      space.retract(target, delta, lam)])


def margins(h_star: Tensor, h_tilde: Tensor, h_lam: Tensor, n2: Tensor, lam: Tensor,
            mu: Tensor, terms: Sequence[str] = TERMS, t1_margin: bool = False) -> dict[str, Tensor]:
    """The hinge arguments (before ``relu``) ``[S, B]`` from ``h_star [B]``,
    ``h_tilde, h_lam, n2 [S, B]`` and 0-dim ``lam, mu``; a positive margin is a violated
    inequality. Only the names in ``terms`` are computed (keys in ``TERMS`` order).

    ``t1_margin``: PRISE's "option1" (its default; TF2 code ``src/train_level_one.py``), which
    asks T1 for quadratic growth too: ``m1 = h* - h_l + mu/2 * lam^2 * n2``."""
    out = {}
    if "t1" in terms:
        out["t1"] = h_star - h_lam + (mu / 2 * lam**2 * n2 if t1_margin else 0.0)
    if "t2" in terms:
        out["t2"] = h_star - h_tilde + mu / 2 * n2
    if "t3" in terms:
        out["t3"] = h_lam - (1 - lam) * h_star - lam * h_tilde + mu / 2 * lam * (1 - lam) * n2
    return out


def hinge_terms(margin: dict[str, Tensor]) -> dict[str, Tensor]:
    """``relu`` of each margin ``[S, B]``: the hinge terms ``T_i``."""
    return {name: torch.relu(m) for name, m in margin.items()}


def aggregate_hinge(terms: dict[str, Tensor], aggregate: str = "sum") -> Tensor:
    """The scalar hinge: sum of the terms ``[S, B]``, aggregated over samples per example
    (``"sum"`` or ``"max"``), then averaged over the batch."""
    per_sample = sum(terms.values())  # [S, B]
    per_example = per_sample.sum(0) if aggregate == "sum" else per_sample.amax(0)
    return per_example.mean()


def ascent_objective(margin: dict[str, Tensor]) -> Tensor:
    """Per-(sample, example) objective ``[S, B]`` for the adversarial search: the hinge where it
    is positive, else the largest (negative) margin, so the gradient is informative even where
    every ``relu`` is inactive. It is positive exactly where the hinge is, and equal to it."""
    stacked = torch.stack(list(margin.values()))
    hinge = torch.relu(stacked).sum(0)
    return torch.where(hinge > 0, hinge, stacked.amax(0))
