"""Learned-feature ICP: an iterative solver that descends the network's own energy h, recomputed at w.

For a transform w, the source moved by w and the target go through the network, and every moved
source point i is compared with every target point j by a cost that adds geometry and learned
features (both unit-normalised, D the feature size):

    c_ij(w) = |w(x_i) - y_j|^2 + feature_weight * |phi_i(w) - psi_j(w)|^2,
    (phi(w), psi(w)) = network(w(x), y),

    h(w) = mean_i min_j c_ij(w).

The correspondences are re-derived from the transformed source at every w, so h is not a quadratic
with fixed matches and its minimiser is not given in closed form. `descend` minimises it by
alternating a correspondence step (j_i = argmin_j c_ij at the current w, torch) and a Procrustes
step (the rigid fit of x onto y_j, `geometry.procrustes`, i.e. `roma.special_procrustes`): ICP
whose nearest neighbours are taken in learned feature space plus geometry.

On noise-free pairs (the target a permutation of the transformed source, `pairs.py` protocols
`dcp`/`so3`), w* moves the source onto the target exactly. Every network of `models.py` is
permutation-equivariant (per-point embedding, k-NN EdgeConv, cross-attention), so phi_i(w*) =
psi_pi(i)(w*) for the true match pi(i): c_i,pi(i)(w*) = 0 = h(w*), the minimum of h >= 0, and the
solver started at w* stays there (a fixed point, whatever the weights).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import gin
import torch
from torch import nn
from torch.nn import functional as F

from bench.tasks.base import Model
from bench.tasks.registration import geometry as geo


def costs(network: nn.Module, moved: torch.Tensor, tgt: torch.Tensor,
          feature_weight: float) -> torch.Tensor:
    """c_ij (module docstring) for `moved` [n, N, 3] (the source already moved by w) and `tgt`
    [n, M, 3] -> [n, N, M]."""
    fx, fy = network(moved, tgt)
    fx, fy = F.normalize(fx, dim=-1), F.normalize(fy, dim=-1)
    geometric = (moved.pow(2).sum(-1)[..., None] + tgt.pow(2).sum(-1)[:, None]
                 - 2.0 * moved @ tgt.transpose(-1, -2)).clamp_min(0.0)  # |x_i - y_j|^2
    feature = (2.0 - 2.0 * fx @ fy.transpose(-1, -2)).clamp_min(0.0)  # |a - b|^2 of unit vectors
    return geometric + feature_weight * feature


def energy(network: nn.Module, src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor,
           feature_weight: float, chunk: int = 64) -> torch.Tensor:
    """h(w) = mean_i min_j c_ij(w). `src` [B, N, 3], `tgt` [B, M, 3], `w` [K, B, 4, 4] -> [K, B].
    The K * B clouds go through the network `chunk` at a time (bounded memory)."""
    k, b = w.shape[:2]
    moved = geo.apply(w, src[None]).reshape(k * b, *src.shape[1:])
    targets = tgt[None].expand(k, -1, -1, -1).reshape(k * b, *tgt.shape[1:])
    parts = [costs(network, m, t, feature_weight).amin(-1).mean(-1)
             for m, t in zip(moved.split(chunk), targets.split(chunk))]
    return torch.cat(parts).reshape(k, b)


def descend(network: nn.Module, src: torch.Tensor, tgt: torch.Tensor, init: torch.Tensor,
            steps: int, feature_weight: float) -> torch.Tensor:
    """`steps` alternating correspondence / Procrustes steps on h from `init` [B, 4, 4].
    Returns every iterate, [steps, B, 4, 4] (excluding `init`)."""
    current, out = init, []
    for _ in range(steps):
        match = costs(network, geo.apply(current, src), tgt, feature_weight).argmin(-1)  # [B, N]
        matched = torch.gather(tgt, 1, match[..., None].expand(-1, -1, tgt.shape[-1]))
        current = geo.procrustes(src, matched)
        out.append(current)
    return torch.stack(out) if out else init.new_zeros((0, *init.shape))


@runtime_checkable
class LearnedSolver(Protocol):
    """A registration model whose test-time solver descends its own learned energy: the task
    takes its `energy` as h and runs `descend` after the network's passes (`FeatureICP`)."""

    def energy(self, src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor) -> torch.Tensor: ...

    def descend(self, src: torch.Tensor, tgt: torch.Tensor, init: torch.Tensor) -> torch.Tensor: ...


@gin.configurable(module="bench.tasks.registration")
class FeatureICP(Model):
    """A registration network (`network`, a `DCPNet`) whose test-time solver is learned-feature ICP
    on its own h (module docstring): the network's passes give the start, `steps` alternating
    correspondence / Procrustes steps descend h, classical ICP refines after (task's
    `icp_iterations`). h is recomputed at w, so the optimality gap and the spurious-minimum rate
    carry information (`uninformative_metrics` is empty).

    Args:
        network: the feature network, `(src [B, N, 3], tgt [B, M, 3]) -> (fx, fy)`.
        steps: learned-feature ICP steps at test time.
        feature_weight: weight of the feature term of c_ij (the geometric term has weight 1).
        chunk: clouds per network call when h is evaluated at many w.
    """

    family = "registration"
    uninformative_metrics: tuple[str, ...] = ()

    def __init__(self, network: nn.Module = gin.REQUIRED, steps: int = 10,
                 feature_weight: float = 0.05, chunk: int = 64) -> None:
        super().__init__()
        if steps < 1 or feature_weight < 0 or chunk < 1:
            raise ValueError(f"FeatureICP needs steps >= 1, feature_weight >= 0, chunk >= 1; got "
                             f"steps={steps!r}, feature_weight={feature_weight!r}, "
                             f"chunk={chunk!r}")
        self.network = network
        self.steps, self.feature_weight, self.chunk = steps, feature_weight, chunk

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(src, tgt)

    def energy(self, src: torch.Tensor, tgt: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """h at `w` [K, B, 4, 4] -> [K, B] (see `energy`)."""
        return energy(self.network, src, tgt, w, self.feature_weight, self.chunk)

    def descend(self, src: torch.Tensor, tgt: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """The solver's iterates from `init` [B, 4, 4] -> [steps, B, 4, 4] (see `descend`)."""
        return descend(self.network, src, tgt, init, self.steps, self.feature_weight)
