"""Label spaces: where the ground truth lives and how it is perturbed.

A :class:`Space` owns the geometry that :class:`dlc.StarConvexLoss` needs. Shapes, with ``B`` the
batch, ``n`` the number of perturbations and ``*event`` / ``*tangent`` the shape of one target /
one perturbation:

- ``sample(target [B, *event], n) -> delta [n, B, *tangent]``
- ``retract(target [B, *event], delta [n, B, *tangent], lam) -> [n, B, *event]``: the point at
  "fraction" ``lam`` from ``target`` towards ``retract(target, delta, 1)`` (``w* + lam*delta`` in
  flat spaces, along the geodesic on SO(3)). ``lam`` is a float or a tensor broadcastable to
  ``[n, B]``.
- ``sqnorm(target, delta) -> [n, B]``: the squared length of a perturbation.
- ``project(target, delta) -> delta``: back into the region ``sample`` draws from.
- ``radius(target) -> [B]``: the size of that region (scales adversarial steps and plot slices).
- ``distance(a [..., *event], b [..., *event]) -> [...]``: geodesic distance, batch dims broadcast.

The flat spaces live here; the rotation groups SO(3) and SE(3) in :mod:`dlc.rotations`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Space", "Euclidean", "Homography", "Simplex"]

Lam = float | Tensor


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(0, 1) of ``shape`` on ``like``'s dtype/device; drawn on the generator's device."""
    device = generator.device if generator is not None else like.device
    out = torch.rand(shape, generator=generator, device=device, dtype=like.dtype)
    return out.to(like.device)


def _normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, 1) of ``shape`` on ``like``'s dtype/device; drawn on the generator's device."""
    device = generator.device if generator is not None else like.device
    out = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return out.to(like.device)


def _lam_like(lam: Lam, tangent_ndim: int) -> Lam:
    """Reshape a tensor ``lam`` broadcastable to ``[n, B]`` so it broadcasts against a
    perturbation ``[n, B, *tangent]`` with ``tangent_ndim`` trailing dims."""
    if isinstance(lam, Tensor) and lam.ndim > 0:
        return lam.reshape(lam.shape + (1,) * tangent_ndim)
    return lam


def _flat_sqnorm(x: Tensor, ndim: int) -> Tensor:
    """Sum of squares over the last ``ndim`` dims."""
    return x.pow(2).sum(dim=tuple(range(-ndim, 0)))


def _clamp_norm(x: Tensor, max_norm: float) -> Tensor:
    """Scale the vectors ``x [..., d]`` down to norm at most ``max_norm``."""
    norm = x.norm(dim=-1, keepdim=True)
    return x * torch.clamp(max_norm / norm.clamp_min(torch.finfo(x.dtype).tiny), max=1.0)


def _random_ball_direction(shape: tuple[int, ...], like: Tensor,
                           generator: torch.Generator | None) -> Tensor:
    """Unit vectors ``[*shape[:-1], d]`` uniform on the sphere."""
    v = _normal(shape, like, generator)
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class Space(ABC):
    """A label space; see the module docstring for the shape contract."""

    #: Shape of one target; ``None`` entries are inferred from the target.
    event_shape: tuple[int | None, ...] = ()

    @property
    def event_ndim(self) -> int:
        return len(self.event_shape)

    @abstractmethod
    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        """Shape of one perturbation of ``target [B, *event]``."""

    def check(self, target: Tensor) -> None:
        """Raise ``ValueError`` unless ``target`` is ``[B, *event_shape]``."""
        expected = "[B, " + ", ".join("D" if d is None else str(d) for d in self.event_shape) + "]"
        ok = isinstance(target, Tensor) and target.ndim == 1 + self.event_ndim
        if ok:
            ok = all(e is None or e == s for e, s in zip(self.event_shape, target.shape[1:]))
        if not ok:
            got = list(target.shape) if isinstance(target, Tensor) else type(target).__name__
            raise ValueError(f"{type(self).__name__} expects a target of shape {expected}, got {got}")
        if not target.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects a floating-point target, "
                             f"got {target.dtype}")

    @abstractmethod
    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` perturbations per example: ``[n, B, *tangent]``, target's dtype/device."""

    @abstractmethod
    def retract(self, target: Tensor, delta: Tensor, lam: Lam = 1.0) -> Tensor:
        """Points ``[n, B, *event]`` at fraction ``lam`` along ``delta [n, B, *tangent]``."""

    @abstractmethod
    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        """Squared length ``[n, B]`` of ``delta [n, B, *tangent]``."""

    @abstractmethod
    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        """``delta [n, B, *tangent]`` moved back into the sampling region."""

    @abstractmethod
    def radius(self, target: Tensor) -> Tensor:
        """Size ``[B]`` of the sampling region (in the norm of :meth:`sqnorm`)."""

    @abstractmethod
    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Geodesic distance ``[...]`` between points ``[..., *event]`` (batch dims broadcast)."""


class Euclidean(Space):
    """Flat targets ``[B, *event]`` (``event_dims`` trailing dims, sizes inferred).

    ``distribution="uniform"``: each entry U(-scale, scale) (the authors' generic loss uses
    U(-0.05, 0.05)); the region is that box. ``"normal"``: each entry N(0, scale^2); the region
    (used only by :meth:`project`) is the ball of radius ``3 * scale * sqrt(D)``.

    ``relative=True`` is PRISE's multiplicative noise: ``r`` is drawn as above and
    ``delta = r * w*`` elementwise; :meth:`sqnorm` is then the *relative* norm ``sum r^2`` (with
    ``r = delta / w*``, 0 where ``w*`` is 0) and the region is a box/ball in ``r``.
    ``antithetic=True`` draws ``n/2`` perturbations and returns ``[+d, -d]`` (PRISE uses both
    signs); ``n`` must then be even.
    """

    def __init__(self, scale: float = 0.05, distribution: str = "uniform", relative: bool = False,
                 antithetic: bool = False, event_dims: int = 1) -> None:
        _check_positive("scale", scale)
        _check_choice("distribution", distribution, ("uniform", "normal"))
        if event_dims < 1:
            raise ValueError(f"event_dims must be >= 1, got {event_dims}")
        self.scale = float(scale)
        self.distribution = distribution
        self.relative = relative
        self.antithetic = antithetic
        self.event_shape = (None,) * event_dims

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(scale={self.scale}, distribution={self.distribution!r}, "
                f"relative={self.relative}, antithetic={self.antithetic})")

    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        return tuple(target.shape[1:])

    def _draw(self, shape: tuple[int, ...], target: Tensor,
              generator: torch.Generator | None) -> Tensor:
        if self.distribution == "uniform":
            return (2 * _uniform(shape, target, generator) - 1) * self.scale
        return _normal(shape, target, generator) * self.scale

    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        shape = tuple(target.shape)
        if self.antithetic:
            if n % 2:
                raise ValueError(f"antithetic sampling needs an even number of samples, got {n}")
            half = self._draw((n // 2, *shape), target, generator)
            r = torch.cat([half, -half])
        else:
            r = self._draw((n, *shape), target, generator)
        return r * target if self.relative else r

    def _relative(self, target: Tensor, delta: Tensor) -> Tensor:
        """``r = delta / w*`` (0 where ``w*`` is 0)."""
        safe = torch.where(target == 0, torch.ones_like(target), target)
        return torch.where(target == 0, torch.zeros_like(delta), delta / safe)

    def retract(self, target: Tensor, delta: Tensor, lam: Lam = 1.0) -> Tensor:
        return target + _lam_like(lam, self.event_ndim) * delta

    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        r = self._relative(target, delta) if self.relative else delta
        return _flat_sqnorm(r, self.event_ndim)

    def _region_radius(self, target: Tensor) -> float:
        """Radius of the ball region in (relative) coordinates, normal distribution only."""
        return 3.0 * self.scale * math.sqrt(math.prod(target.shape[1:]))

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        r = self._relative(target, delta) if self.relative else delta
        if self.distribution == "uniform":
            r = r.clamp(-self.scale, self.scale)
        else:
            flat = _clamp_norm(r.flatten(-self.event_ndim), self._region_radius(target))
            r = flat.reshape(r.shape)
        return r * target if self.relative else r

    def radius(self, target: Tensor) -> Tensor:
        d = math.prod(target.shape[1:])
        ones = target.new_ones(target.shape[0])
        if self.distribution == "uniform":  # the box [-scale, scale]^D (in r if relative)
            if self.relative:  # |r * w*| <= scale * |w*|
                return self.scale * target.flatten(1).norm(dim=1)
            return ones * self.scale * math.sqrt(d)
        if self.relative:  # |r * w*| <= |r| * max |w*|
            return self._region_radius(target) * target.flatten(1).abs().amax(1)
        return ones * self._region_radius(target)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return _flat_sqnorm(a - b, self.event_ndim).sqrt()


class Homography(Euclidean):
    """A homography as its 4-corner offsets in pixels: targets ``[B, 4, 2]``.

    Flat geometry on the 8 corner coordinates (the usual 4-point parametrisation); the
    perturbation is per-coordinate noise in pixels (``scale``), or PRISE's multiplicative noise
    with ``relative=True``.
    """

    def __init__(self, scale: float = 4.0, distribution: str = "uniform", relative: bool = False,
                 antithetic: bool = False) -> None:
        super().__init__(scale, distribution, relative, antithetic, event_dims=2)
        self.event_shape = (4, 2)


def _project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v [..., C]`` onto the probability simplex (sort-based)."""
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    k = torch.arange(1, v.shape[-1] + 1, dtype=v.dtype, device=v.device)
    support = (u - css / k) > 0
    rho = support.to(v.dtype).cumsum(-1).argmax(-1, keepdim=True)  # last True index
    theta = css.gather(-1, rho) / (rho + 1).to(v.dtype)
    return (v - theta).clamp_min(0)


class Simplex(Space):
    """Probability vectors ``[B, C]`` (e.g. one-hot class labels).

    ``mode="softmax"`` is the authors' projection: ``delta [n, B, C]`` is logit noise (see
    ``distribution``, as in :class:`Euclidean`) and ``retract = softmax(w* + lam * delta)``. This
    is *not* the segment ``w* -> w~``, and at ``lam = 0`` it gives ``softmax(w*)``, not ``w*``.
    ``norm="projected"``: ``sqnorm = |softmax(w* + delta) - w*|^2`` (the authors' generic loss;
    for one-hot labels it is dominated by the softmax gap), ``norm="noise"``: ``|delta|^2`` (PRISE).

    ``mode="mixture"`` stays on the simplex: ``delta = a * (q - w*)`` with ``q ~ Dirichlet(1)``
    and ``a ~ U(0, scale)``, ``scale`` in (0, 1]; ``retract = w* + lam * delta`` is a convex
    combination of ``w*`` and ``q`` for ``lam`` in [0, 1]; ``sqnorm = |delta|^2``.
    """

    event_shape = (None,)

    def __init__(self, scale: float = 0.05, mode: str = "softmax", norm: str = "projected",
                 distribution: str = "uniform") -> None:
        _check_positive("scale", scale)
        _check_choice("mode", mode, ("softmax", "mixture"))
        _check_choice("norm", norm, ("projected", "noise"))
        _check_choice("distribution", distribution, ("uniform", "normal"))
        if mode == "mixture" and scale > 1:
            raise ValueError(f"mixture mode needs scale in (0, 1], got {scale}")
        self.scale = float(scale)
        self.mode = mode
        self.norm = norm
        self.distribution = distribution
        self._logits = Euclidean(scale, distribution)

    def __repr__(self) -> str:
        return f"Simplex(scale={self.scale}, mode={self.mode!r}, norm={self.norm!r})"

    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        return tuple(target.shape[1:])

    def check(self, target: Tensor) -> None:
        super().check(target)
        sums = target.sum(-1)
        if (target < -1e-6).any() or ((sums - 1).abs() > 1e-3).any():
            raise ValueError("Simplex expects probability vectors (non-negative, rows summing "
                             f"to 1), got row sums in [{sums.min():.4g}, {sums.max():.4g}]")

    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        if self.mode == "softmax":
            return self._logits.sample(target, n, generator)
        shape = (n, *target.shape)
        e = -torch.log(_uniform(shape, target, generator).clamp_min(torch.finfo(target.dtype).tiny))
        q = e / e.sum(-1, keepdim=True)  # Dirichlet(1, ..., 1)
        a = _uniform(shape[:2] + (1,), target, generator) * self.scale
        return a * (q - target)

    def retract(self, target: Tensor, delta: Tensor, lam: Lam = 1.0) -> Tensor:
        step = _lam_like(lam, 1) * delta
        if self.mode == "softmax":
            return torch.softmax(target + step, dim=-1)
        return target + step

    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        if self.mode == "softmax" and self.norm == "projected":
            return (torch.softmax(target + delta, dim=-1) - target).pow(2).sum(-1)
        return delta.pow(2).sum(-1)

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        if self.mode == "softmax":
            return self._logits.project(target, delta)
        # region = scale * (simplex - w*): project w* + delta/scale onto the simplex
        v = _project_simplex(target + delta / self.scale)
        return self.scale * (v - target)

    def radius(self, target: Tensor) -> Tensor:
        if self.mode == "softmax":
            return self._logits.radius(target)
        return target.new_full((target.shape[0],), self.scale * math.sqrt(2.0))

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return (a - b).pow(2).sum(-1).sqrt()
