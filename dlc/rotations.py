"""Rotation groups as label spaces: SO(3) (:class:`Rotation`) and SE(3) (:class:`RigidTransform`).

Same contract as every :class:`dlc.spaces.Space` (shapes in that module's docstring); the
perturbation is a tangent vector and ``retract`` follows the geodesic. Every rotation operation
goes through ``roma``.
"""

from __future__ import annotations

import math

import roma
import torch
from torch import Tensor

from dlc.spaces import (
    Lam,
    Space,
    _check_choice,
    _check_positive,
    _clamp_norm,
    _lam_like,
    _normal,
    _random_ball_direction,
    _uniform,
)

__all__ = ["Rotation", "RigidTransform"]


def _check_rotations(name: str, rot: Tensor, tol: float = 1e-3) -> None:
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    err = (rot.transpose(-1, -2) @ rot - eye).abs().amax() if rot.numel() else 0.0
    if err > tol:
        raise ValueError(f"{name} expects rotation matrices (R^T R = I within {tol}), "
                         f"got max |R^T R - I| = {float(err):.3g}")


def _sample_rotvec(shape: tuple[int, ...], like: Tensor, max_angle: float, distribution: str,
                   generator: torch.Generator | None) -> Tensor:
    """Rotation vectors ``[*shape, 3]`` with angle at most ``max_angle``."""
    if distribution == "uniform":
        axis = _random_ball_direction((*shape, 3), like, generator)
        return axis * _uniform((*shape, 1), like, generator) * max_angle
    return _clamp_norm(_normal((*shape, 3), like, generator) * (max_angle / 3), max_angle)


class Rotation(Space):
    """Rotation matrices ``[B, 3, 3]``; perturbations are rotation vectors ``[n, B, 3]``.

    ``retract = R* @ exp(lam * delta)`` (right-multiplied, i.e. in the body frame) via
    ``roma.rotvec_to_rotmat``, which is the geodesic from ``R*`` with ``sqnorm = |delta|^2`` =
    squared geodesic distance (for angles below pi). ``uniform``: random axis, angle
    U(0, max_angle); ``normal``: each component N(0, (max_angle/3)^2), clamped to ``max_angle``.
    """

    event_shape = (3, 3)

    def __init__(self, max_angle: float = 0.5, distribution: str = "uniform") -> None:
        if not 0 < max_angle < math.pi:
            raise ValueError(f"max_angle must be in (0, pi) radians, got {max_angle}")
        _check_choice("distribution", distribution, ("uniform", "normal"))
        self.max_angle = float(max_angle)
        self.distribution = distribution

    def __repr__(self) -> str:
        return f"Rotation(max_angle={self.max_angle}, distribution={self.distribution!r})"

    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        return (3,)

    def check(self, target: Tensor) -> None:
        super().check(target)
        _check_rotations("Rotation", target)

    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        return _sample_rotvec((n, target.shape[0]), target, self.max_angle, self.distribution,
                              generator)

    def retract(self, target: Tensor, delta: Tensor, lam: Lam = 1.0) -> Tensor:
        return target @ roma.rotvec_to_rotmat(_lam_like(lam, 1) * delta)

    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        return delta.pow(2).sum(-1)

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        return _clamp_norm(delta, self.max_angle)

    def radius(self, target: Tensor) -> Tensor:
        return target.new_full((target.shape[0],), self.max_angle)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        return roma.rotmat_geodesic_distance(a, b)


class RigidTransform(Space):
    """Rigid transforms as homogeneous matrices ``[B, 4, 4]``; perturbations
    ``[n, B, 6] = (rotation vector w, translation v)``.

    ``retract``: ``R = R* exp(lam w)``, ``t = t* + lam v``, the geodesic of the product
    SO(3) x R^3 rather than the SE(3) screw motion ``T* exp(lam xi)``. The product keeps the
    rotation and translation scales (``max_angle``, ``max_translation``, ``translation_weight``)
    decoupled, so the translation perturbation does not depend on the rotation one, and
    ``sqnorm = |w|^2 + translation_weight * |v|^2`` is exactly the squared product distance.
    Both parts are sampled with a uniform direction and a length U(0, max).
    """

    event_shape = (4, 4)

    def __init__(self, max_angle: float = 0.5, max_translation: float = 0.1,
                 translation_weight: float = 1.0) -> None:
        if not 0 < max_angle < math.pi:
            raise ValueError(f"max_angle must be in (0, pi) radians, got {max_angle}")
        _check_positive("max_translation", max_translation)
        _check_positive("translation_weight", translation_weight)
        self.max_angle = float(max_angle)
        self.max_translation = float(max_translation)
        self.translation_weight = float(translation_weight)

    def __repr__(self) -> str:
        return (f"RigidTransform(max_angle={self.max_angle}, max_translation="
                f"{self.max_translation}, translation_weight={self.translation_weight})")

    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        return (6,)

    def check(self, target: Tensor) -> None:
        super().check(target)
        _check_rotations("RigidTransform", target[:, :3, :3])
        last = target.new_tensor([0.0, 0.0, 0.0, 1.0])
        if target.numel() and (target[:, 3] - last).abs().amax() > 1e-6:
            raise ValueError("RigidTransform expects homogeneous matrices with last row "
                             "[0, 0, 0, 1]")

    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (n, target.shape[0])
        w = _sample_rotvec(shape, target, self.max_angle, "uniform", generator)
        v = _random_ball_direction((*shape, 3), target, generator)
        v = v * _uniform((*shape, 1), target, generator) * self.max_translation
        return torch.cat([w, v], dim=-1)

    def retract(self, target: Tensor, delta: Tensor, lam: Lam = 1.0) -> Tensor:
        step = _lam_like(lam, 1) * delta
        rot = target[:, :3, :3] @ roma.rotvec_to_rotmat(step[..., :3])
        trans = target[:, :3, 3] + step[..., 3:]
        top = torch.cat([rot, trans[..., None]], dim=-1)
        bottom = target[:, 3:].expand(*top.shape[:-2], 1, 4)
        return torch.cat([top, bottom], dim=-2)

    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        w, v = delta[..., :3], delta[..., 3:]
        return w.pow(2).sum(-1) + self.translation_weight * v.pow(2).sum(-1)

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        w = _clamp_norm(delta[..., :3], self.max_angle)
        v = _clamp_norm(delta[..., 3:], self.max_translation)
        return torch.cat([w, v], dim=-1)

    def radius(self, target: Tensor) -> Tensor:
        r = math.sqrt(self.max_angle**2 + self.translation_weight * self.max_translation**2)
        return target.new_full((target.shape[0],), r)

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        rot = roma.rotmat_geodesic_distance(a[..., :3, :3], b[..., :3, :3])
        trans = (a[..., :3, 3] - b[..., :3, 3]).pow(2).sum(-1)
        return (rot.pow(2) + self.translation_weight * trans).sqrt()
