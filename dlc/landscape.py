"""Diagnostics of the loss landscape around the ground truth (no gradients).

- :func:`violation_rate`: the share of random rays through ``w*`` along which ``h`` is not
  mu-strongly star-convex.
- :func:`slice_1d`, :func:`slice_2d`: ``h`` along one or two tangent directions, for plots.

``h`` follows the :class:`dlc.StarConvexLoss` contract: ``[K, B, *event] -> [K, B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlc.functional import LossFn, loss_at
from dlc.spaces import Space

__all__ = ["violation_rate", "slice_1d", "slice_2d"]


@torch.no_grad()
def violation_rate(h: LossFn, target: Tensor, space: Space, rays: int = 32, points: int = 16,
                   mu: float = 0.0, generator: torch.Generator | None = None, tol: float = 1e-6,
                   reduce: bool = True, chunk_size: int | None = None) -> Tensor:
    """Share of (ray, example) pairs on which ``h`` violates mu-strong star-convexity at ``w*``.

    Each ray is a sampled ``delta``; ``h`` is evaluated at ``w_t = retract(w*, delta, t)`` for
    ``t = 1/points, ..., 1`` (one call of ``h`` with ``K = 1 + rays * points``, or chunks of
    ``chunk_size``). Since ``w_{t_i}`` is the point at fraction ``l = t_i / t_j`` of the way from
    ``w*`` to ``w_{t_j}``, and ``|w_{t_j} - w*|^2 = sqnorm(t_j delta)``, a ray is violated if for
    some ``0 < t_i < t_j``::

        h(w_{t_i}) > (1 - l) h* + l h(w_{t_j}) - mu/2 l (1 - l) sqnorm(t_j delta) + tol'

    or if ``h(w_{t_j}) < h* - tol'`` for some ``t_j`` (``w*`` is not the minimum on the ray).
    ``tol' = tol * (1 + |right-hand side|)``, a relative tolerance for the equality cases
    (``h = |w - w*|^2`` is exactly 2-strongly star-convex).

    Args:
        target: ground truth ``[B, *event]``.
        rays, points: rays per example and points per ray.
        reduce: if False, return the per-example share ``[B]``.

    Returns:
        A scalar tensor (or ``[B]``) in [0, 1].
    """
    space.check(target)
    target = target.detach()
    b = target.shape[0]
    delta = space.sample(target, rays, generator)  # [R, B, *tangent]
    ts = torch.linspace(0, 1, points + 1, dtype=target.dtype, device=target.device)[1:]  # [P]
    tangent_ndim = delta.ndim - 2
    d = delta[None].expand(points, *delta.shape).reshape(points * rays, *delta.shape[1:])
    lam = ts[:, None].expand(points, rays).reshape(points * rays, 1)  # [P*R, 1]
    values = loss_at(h, torch.cat([target[None], space.retract(target, d, lam)]), chunk_size)
    h_star = values[0]  # [B]
    h_ray = values[1:].reshape(points, rays, b)  # [P, R, B]
    scaled = d * lam.reshape(lam.shape + (1,) * tangent_ndim)
    n2 = space.sqnorm(target, scaled).reshape(points, rays, b)  # |w_t - w*|^2

    violated = (h_ray < h_star - tol * (1 + h_star.abs())).any(0)  # [R, B]
    for j in range(1, points):
        frac = (ts[:j] / ts[j])[:, None, None]  # [j, 1, 1]
        rhs = (1 - frac) * h_star + frac * h_ray[j] - mu / 2 * frac * (1 - frac) * n2[j]
        violated |= (h_ray[:j] > rhs + tol * (1 + rhs.abs())).any(0)
    per_example = violated.to(target.dtype).mean(0)  # [B]
    return per_example.mean() if reduce else per_example


def _direction(space: Space, target: Tensor, generator: torch.Generator | None,
               orthogonal_to: Tensor | None = None) -> Tensor:
    """A sampled tangent direction ``[B, *tangent]`` with flat norm ``space.radius`` per example,
    optionally Gram-Schmidt orthogonalised against ``orthogonal_to``."""
    d = space.sample(target, 1, generator)[0]
    flat = d.flatten(1)
    if orthogonal_to is not None:
        other = orthogonal_to.flatten(1)
        other = other / other.norm(dim=1, keepdim=True).clamp_min(1e-12)
        flat = flat - (flat * other).sum(1, keepdim=True) * other
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (flat * space.radius(target)[:, None]).reshape(d.shape)


@torch.no_grad()
def slice_1d(h: LossFn, target: Tensor, space: Space, direction: Tensor | None = None,
             ts: Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``h`` at ``retract(w*, direction, t)`` for each ``t``.

    Args:
        target: ground truth ``[B, *event]``.
        direction: ``[B, *tangent]``; default: a sampled direction scaled to the space radius
            (so ``t = +-1`` reaches the edge of the sampling region).
        ts: ``[T]``, default ``linspace(-1, 1, 41)``. Negative ``t`` leaves the simplex in
            ``Simplex(mode="mixture")``.

    Returns:
        ``(ts [T], values [T, B])``.
    """
    space.check(target)
    target = target.detach()
    if direction is None:
        direction = _direction(space, target, generator)
    ts = torch.linspace(-1, 1, 41) if ts is None else ts
    ts = ts.to(target)
    d = direction.to(target)[None].expand(len(ts), *direction.shape)
    return ts, loss_at(h, space.retract(target, d, ts[:, None]))


@torch.no_grad()
def slice_2d(h: LossFn, target: Tensor, space: Space, d1: Tensor | None = None,
             d2: Tensor | None = None, grid: Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """``h`` at ``retract(w*, g_i d1 + g_j d2, 1)`` on a grid.

    Args:
        target: ground truth ``[B, *event]``.
        d1, d2: directions ``[B, *tangent]``; default: sampled, scaled to the space radius, ``d2``
            orthogonalised against ``d1``.
        grid: ``[G]``, default ``linspace(-1, 1, 21)``.

    Returns:
        ``(grid [G], values [G, G, B])`` with ``values[i, j]`` at ``g_i d1 + g_j d2``.
    """
    space.check(target)
    target = target.detach()
    if d1 is None:
        d1 = _direction(space, target, generator)
    if d2 is None:
        d2 = _direction(space, target, generator, orthogonal_to=d1)
    grid = (torch.linspace(-1, 1, 21) if grid is None else grid).to(target)
    g = len(grid)
    expand = (...,) + (None,) * d1.ndim
    delta = grid[:, None][expand] * d1.to(target) + grid[None, :][expand] * d2.to(target)
    values = loss_at(h, space.retract(target, delta.reshape(g * g, *d1.shape), 1.0))
    return grid, values.reshape(g, g, -1)
