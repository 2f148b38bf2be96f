"""Registration networks: DCP-like per-point embeddings (Wang & Solomon 2019, "Deep Closest Point")
and a classical ICP "model" with nothing to learn.

A network maps a source cloud `src` [B, N, 3] and a target cloud `tgt` [B, M, 3] to per-point
features `(fx [B, N, D], fy [B, M, D])`: a PointNet (shared per-point MLP) or DGCNN (EdgeConv on
k-NN graphs) embedding, optionally followed by DCP's transformer, which lets each cloud's features
attend to the other's (residual: phi_x = F_x + T(F_x, F_y)). Soft correspondences and the SVD head
are in the task (`bench.tasks.registration.task`); PRNet-like iterative refinement (PRNet, Wang &
Solomon 2019) is the task applying the network `iterations` times.
"""

from __future__ import annotations

from typing import Literal

import gin
import torch
from torch import nn

from bench.tasks.base import Model


def _knn_edges(x: torch.Tensor, k: int) -> torch.Tensor:
    """EdgeConv inputs: x [B, N, C] -> [B, N, k, 2C] = (x_j - x_i, x_i) over the k nearest j."""
    idx = torch.cdist(x, x).topk(k, dim=-1, largest=False).indices  # [B, N, k]
    neighbours = torch.gather(x[:, None].expand(-1, x.shape[1], -1, -1), 2,
                              idx[..., None].expand(-1, -1, -1, x.shape[-1]))
    centre = x[:, :, None].expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=-1)


class PointNetEmbedding(nn.Module):
    """Shared per-point MLP 3 -> widths -> dims (DCP's PointNet embedding, no pooling).
    [B, N, 3] -> [B, N, dims]."""

    def __init__(self, dims: int, widths: tuple[int, ...] = (64, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 3
        for width in widths:
            layers += [nn.Linear(prev, width), nn.LayerNorm(width), nn.ReLU()]
            prev = width
        layers.append(nn.Linear(prev, dims))
        self.mlp = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.mlp(points)


class DGCNNEmbedding(nn.Module):
    """DGCNN (Wang et al. 2019) as in DCP: EdgeConv layers (k-NN recomputed in feature space, max
    over neighbours), their outputs concatenated and mixed to `dims`. [B, N, 3] -> [B, N, dims]."""

    def __init__(self, dims: int, widths: tuple[int, ...] = (64, 64, 128, 256), k: int = 20) -> None:
        super().__init__()
        self.k = k
        self.edges = nn.ModuleList()
        prev = 3
        for width in widths:
            self.edges.append(nn.Sequential(nn.Linear(2 * prev, width), nn.LayerNorm(width),
                                            nn.LeakyReLU(0.2)))
            prev = width
        self.mix = nn.Linear(sum(widths), dims)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x, outs = points, []
        k = min(self.k, points.shape[1])
        for edge in self.edges:
            x = edge(_knn_edges(x, k)).amax(dim=2)
            outs.append(x)
        return self.mix(torch.cat(outs, dim=-1))


@gin.configurable(module="bench.tasks.registration")
class DCPNet(Model):
    """DCP-like feature network (see the module docstring).

    Args:
        embedding: 'pointnet' or 'dgcnn'.
        dims: feature size D.
        widths: hidden widths of the embedding.
        k: neighbours of DGCNN's EdgeConv.
        attention_layers: transformer layers (0 = DCP-v1, no attention).
        heads, feedforward: transformer sizes.
    """

    family = "registration"
    #: the estimate is argmin h in closed form (the SVD head minimises h at the last pass's
    #: correspondences), so the gap to the lowest known h and the spurious-minimum rate say
    #: nothing about the network: they are not reported for it (`bench.metrics.reported`).
    uninformative_metrics: tuple[str, ...] = ("optimality_gap", "spurious_minimum")

    def __init__(self, embedding: Literal["pointnet", "dgcnn"] = "pointnet", dims: int = 64,
                 widths: tuple[int, ...] = (64, 64, 128), k: int = 20, attention_layers: int = 1,
                 heads: int = 4, feedforward: int = 128) -> None:
        super().__init__()
        if embedding == "pointnet":
            self.embed = PointNetEmbedding(dims, tuple(widths))
        elif embedding == "dgcnn":
            self.embed = DGCNNEmbedding(dims, tuple(widths), k)
        else:
            raise ValueError(f"embedding must be 'pointnet' or 'dgcnn', got {embedding!r}")
        self.attention = nn.ModuleList([
            nn.TransformerDecoderLayer(dims, heads, feedforward, dropout=0.0, batch_first=True)
            for _ in range(attention_layers)])

    def _attend(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for layer in self.attention:
            x = layer(x, y)
        return x

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fx, fy = self.embed(src), self.embed(tgt)
        if len(self.attention):
            fx, fy = fx + self._attend(fx, fy), fy + self._attend(fy, fx)
        return fx, fy


@gin.configurable(module="bench.tasks.registration")
class ICPOnly(Model):
    """Classical point-to-point ICP from the identity: no network (the task skips the network
    iterations for it). One dummy parameter so optimizers accept it; train it with 0 epochs."""

    family = "registration"
    learned = False
    #: no network: its "network estimate" would be the identity start
    uninformative_metrics: tuple[str, ...] = ("rot_network_deg", "trans_network")

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))
