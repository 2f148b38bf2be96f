"""PRISE's perturbation of a homography label, for the `dlc_prise.gin` preset.

PRISE (Zhang et al., CVPR 2023; file `src/train_level_one.py` of its TF2 Deep-LK code) perturbs
the ground-truth homography H* itself, not its corner offsets: for the first 8 entries,
`delta_j = r_j * H*_j` with `r ~ U(-1/12, 1/12)^8` and `|r_j| >= 0.02`, uses both `+delta` and
`-delta`, and measures the perturbation by the relative norm `sum_j r_j^2`.

`PriseHomography` does that on the suite's label, the 4-corner offsets `w [B, 4, 2]`: the
tangent is `r [B, 8]`, `retract(w*, r, lam)` = the offsets of `H*` with entries
`H*_j (1 + lam r_j)` (j < 8; `H*_{33} = 1`), `sqnorm = sum_j r_j^2`. The dead zone is drawn
exactly: `|r_j| ~ U(dead_zone, scale)` with a random sign, i.e. U(-scale, scale) conditioned on
`|r_j| >= dead_zone`. It needs the protocol's input and template sizes (`s`, `t`), which the DLC
objective fills in from the task (`for_task`).
"""

from __future__ import annotations

import copy
import math

import gin
import torch
from torch import Tensor

from bench.tasks.homography.geometry import homography_to_offsets, offsets_to_homography
from dlc import Homography


@gin.configurable(module="bench.tasks.homography")
class PriseHomography(Homography):
    """PRISE's relative, antithetic, dead-zoned noise on the entries of H* (module docstring).

    Args:
        scale: bound of |r_j| (PRISE: 1/12).
        dead_zone: lower bound of |r_j| (PRISE: 0.02); 0 disables it.
        antithetic: use +r and -r (PRISE: yes); the number of samples must then be even.
        input_size, template_size: s, t of the protocol (None: taken from the task).
    """

    def __init__(self, scale: float = 1 / 12, dead_zone: float = 0.02, antithetic: bool = True,
                 input_size: int | None = None, template_size: int | None = None) -> None:
        super().__init__(scale=scale, distribution="uniform", relative=True, antithetic=antithetic)
        if not 0 <= dead_zone < scale:
            raise ValueError(f"PriseHomography.dead_zone must be in [0, scale={scale}), "
                             f"got {dead_zone!r}")
        self.dead_zone = float(dead_zone)
        self.sizes = (input_size, template_size)

    def __repr__(self) -> str:
        return (f"PriseHomography(scale={self.scale:.4g}, dead_zone={self.dead_zone}, "
                f"antithetic={self.antithetic}, sizes={self.sizes})")

    def for_task(self, task) -> PriseHomography:
        """A copy with the task protocol's (input, template) sizes where they are not set."""
        out = copy.copy(self)
        s, t = self.sizes
        out.sizes = (s or task.protocol.input_size, t or task.protocol.template_size)
        return out

    def _st(self) -> tuple[int, int]:
        s, t = self.sizes
        if s is None or t is None:
            raise ValueError("PriseHomography needs input_size and template_size (bind them, "
                             "or let the DLC objective take them from the task)")
        return s, t

    def tangent_shape(self, target: Tensor) -> tuple[int, ...]:
        return (8,)

    def _draw(self, shape: tuple[int, ...], target: Tensor,
              generator: torch.Generator | None) -> Tensor:
        device = generator.device if generator is not None else target.device
        u = torch.rand((2, *shape), generator=generator, device=device, dtype=target.dtype)
        size = self.dead_zone + (self.scale - self.dead_zone) * u[0]
        sign = torch.where(u[1] < 0.5, -1.0, 1.0).to(size)
        return (sign * size).to(target.device)

    def sample(self, target: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (target.shape[0], 8)
        if self.antithetic:
            if n % 2:
                raise ValueError(f"antithetic sampling needs an even number of samples, got {n}")
            half = self._draw((n // 2, *shape), target, generator)
            return torch.cat([half, -half])
        return self._draw((n, *shape), target, generator)

    def retract(self, target: Tensor, delta: Tensor, lam: float | Tensor = 1.0) -> Tensor:
        s, t = self._st()
        hom = offsets_to_homography(target, s, t)  # [B, 3, 3]
        if isinstance(lam, Tensor) and lam.ndim > 0:
            lam = lam[..., None]
        factor = torch.cat([1 + lam * delta, delta.new_ones(*delta.shape[:-1], 1)], -1)
        moved = hom[None] * factor.reshape(*delta.shape[:-1], 3, 3)
        return homography_to_offsets(moved, s, t)

    def sqnorm(self, target: Tensor, delta: Tensor) -> Tensor:
        return delta.pow(2).sum(-1)

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        size = delta.abs().clamp(self.dead_zone, self.scale)
        return torch.where(delta < 0, -size, size)

    def radius(self, target: Tensor) -> Tensor:
        return target.new_full((target.shape[0],), self.scale * math.sqrt(8))
