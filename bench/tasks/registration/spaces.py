"""The authors' PRNet-demo perturbation of a rigid-transform label, for the demo preset.

The DLC demo notebook (`ICCV_demo/dlc_prnet_training_demo.ipynb`, `starConvexLoss_PRNetLoss`)
adds uniform noise to the *entries* of the label: the rotation matrix + U(-1/8, 1/8)
(`(rand - 0.5) / 4`), the translation + U(-0.05, 0.05) (`(rand - 0.5) / 10`), with no
re-projection onto SO(3), and measures `|delta|^2` as the plain sum of squares.

`EntryNoise` does that on the suite's label `w [B, 4, 4]`: `delta [B, 4, 4]` is 0 on the last
row, `retract(w*, delta, lam) = w* + lam delta` (not a rigid transform any more, which the
per-example DCP/PRNet loss, h = 'output', accepts), `sqnorm = sum delta^2`.
"""

from __future__ import annotations

import gin
import torch
from torch import Tensor

from dlc import Euclidean


@gin.configurable(module="bench.tasks.registration")
class EntryNoise(Euclidean):
    """Uniform noise on the rotation (`rotation`) and translation (`translation`) entries."""

    def __init__(self, rotation: float = 0.125, translation: float = 0.05) -> None:
        super().__init__(scale=max(rotation, translation), event_dims=2)
        if not (rotation > 0 and translation > 0):
            raise ValueError(f"EntryNoise bounds must be > 0, got rotation={rotation!r}, "
                             f"translation={translation!r}")
        self.event_shape = (4, 4)
        self.bounds = (float(rotation), float(translation))

    def __repr__(self) -> str:
        return f"EntryNoise(rotation={self.bounds[0]}, translation={self.bounds[1]})"

    def _box(self, like: Tensor) -> Tensor:
        """Per-entry bound [4, 4]: rotation block, translation column, 0 on the last row."""
        box = like.new_zeros(4, 4)
        box[:3, :3], box[:3, 3] = self.bounds
        return box

    def _draw(self, shape: tuple[int, ...], target: Tensor,
              generator: torch.Generator | None) -> Tensor:
        device = generator.device if generator is not None else target.device
        u = torch.rand(shape, generator=generator, device=device, dtype=target.dtype)
        return (2 * u.to(target.device) - 1) * self._box(target)

    def project(self, target: Tensor, delta: Tensor) -> Tensor:
        box = self._box(target)
        return torch.maximum(torch.minimum(delta, box), -box)

    def radius(self, target: Tensor) -> Tensor:
        return target.new_full((target.shape[0],), float(self._box(target).norm()))
