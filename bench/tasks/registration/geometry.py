"""Rigid-transform helpers, the weighted Procrustes (Kabsch) head and point-to-point ICP.

Conventions: a transform is a homogeneous matrix `[..., 4, 4]` mapping source points to target
points, `y = R x + t`. Points are `[..., N, 3]`. Rotations go through `roma`; ICP's nearest
neighbours through `scipy.spatial.cKDTree` (CPU, numpy).
"""

from __future__ import annotations

import numpy as np
import roma
import torch
from scipy.spatial import cKDTree


def make_transform(rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """`rot` [..., 3, 3], `trans` [..., 3] -> homogeneous `[..., 4, 4]`."""
    top = torch.cat([rot, trans[..., None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def identity(batch: int, like: torch.Tensor) -> torch.Tensor:
    """`[batch, 4, 4]` identities on `like`'s dtype/device."""
    return torch.eye(4, dtype=like.dtype, device=like.device).expand(batch, 4, 4).clone()


def apply(transform: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """`transform` [..., 4, 4] applied to `points` [..., N, 3] (batch dims broadcast)."""
    return points @ transform[..., :3, :3].transpose(-1, -2) + transform[..., None, :3, 3]


def invert(transform: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid `[..., 4, 4]` transforms."""
    rot_t = transform[..., :3, :3].transpose(-1, -2)
    return make_transform(rot_t, -(rot_t @ transform[..., :3, 3:])[..., 0])


def procrustes(src: torch.Tensor, dst: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted least-squares rigid fit: argmin_T sum_i w_i |T(src_i) - dst_i|^2.

    `src`, `dst` [..., N, 3], `weights` [..., N] (non-negative; None = uniform).
    Returns `[..., 4, 4]`. The rotation is `roma.special_procrustes` of the weighted
    cross-covariance (differentiable; the SVD head of DCP, Wang & Solomon 2019).
    """
    if weights is None:
        weights = torch.ones_like(src[..., 0])
    w = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    src_mean = (w[..., None] * src).sum(dim=-2)
    dst_mean = (w[..., None] * dst).sum(dim=-2)
    cov = (dst - dst_mean[..., None, :]).transpose(-1, -2) @ (
        w[..., None] * (src - src_mean[..., None, :]))  # [..., 3, 3], sum_i w_i y_i x_i^T
    rot = roma.special_procrustes(cov)
    trans = dst_mean - (rot @ src_mean[..., None])[..., 0]
    return make_transform(rot, trans)


def icp(src: torch.Tensor, tgt: torch.Tensor, init: torch.Tensor, iterations: int,
        max_distance: float = 0.2, tolerance: float = 1e-7) -> torch.Tensor:
    """Point-to-point ICP (Besl & McKay 1992) from `init`, every iterate kept.

    `src` [B, N, 3], `tgt` [B, M, 3], `init` [B, 4, 4] (the transform to refine). Each iteration
    matches every transformed source point to its nearest target point (KD-tree), drops pairs
    farther than `max_distance`, and refits the whole transform by Procrustes on the kept pairs.
    An example with fewer than 3 kept pairs keeps its current transform (no NaN, no error); an
    example whose update is below `tolerance` stops moving. Returns `[iterations, B, 4, 4]`
    (excluding `init`), on `init`'s device/dtype. Runs on the CPU in float64.
    """
    dev, dtype = init.device, init.dtype
    src64 = src.detach().cpu().double()
    tgt_np = tgt.detach().cpu().double().numpy()
    trees = [cKDTree(cloud) for cloud in tgt_np]
    current = init.detach().cpu().double().clone()
    active = torch.ones(len(trees), dtype=torch.bool)
    out = []
    for _ in range(iterations):
        moved = apply(current, src64).numpy()
        matched = np.empty_like(moved)
        keep = np.zeros(moved.shape[:2], dtype=bool)
        for b, tree in enumerate(trees):
            if not active[b]:
                continue
            dist, idx = tree.query(moved[b], k=1, distance_upper_bound=max_distance)
            keep[b] = np.isfinite(dist)
            matched[b] = tgt_np[b][np.minimum(idx, len(tgt_np[b]) - 1)]
        weights = torch.from_numpy(keep).double()
        enough = (weights.sum(dim=1) >= 3) & active
        if enough.any():
            fit = procrustes(src64[enough], torch.from_numpy(matched)[enough], weights[enough])
            change = (fit - current[enough]).abs().flatten(1).amax(dim=1)
            current[enough] = fit
            still = enough.clone()
            still[enough] = change > tolerance
            active = still
        else:
            active = enough
        out.append(current.clone())
    if not out:
        return init.new_zeros((0, *init.shape))
    return torch.stack(out).to(device=dev, dtype=dtype)


def rotation_error_deg(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """RPM-Net's isotropic rotation error (Yew & Lee 2020): angle of R_gt^T R_pred in degrees.
    `pred`, `gt` [..., 4, 4] -> [...]."""
    rad = roma.rotmat_geodesic_distance(pred[..., :3, :3], gt[..., :3, :3])
    return torch.rad2deg(rad)


def translation_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """RPM-Net's isotropic translation error |t| of T_gt^-1 T_pred. [..., 4, 4] -> [...]."""
    delta = invert(gt) @ pred
    return delta[..., :3, 3].norm(dim=-1)


def euler_zyx_deg(transform: torch.Tensor) -> torch.Tensor:
    """DCP's Euler angles (Wang & Solomon 2019): `[z, y, x]` in degrees with R = Rx Ry Rz
    (scipy/roma convention 'zyx'). [..., 4, 4] -> [..., 3]."""
    rot = transform[..., :3, :3]
    flat = rot.reshape(-1, 3, 3)
    return roma.rotmat_to_euler("zyx", flat, degrees=True).reshape(*rot.shape[:-2], 3)


def wrap_deg(angle: torch.Tensor) -> torch.Tensor:
    """Angles in degrees wrapped to [-180, 180)."""
    return torch.remainder(angle + 180.0, 360.0) - 180.0


def modified_chamfer(pred: torch.Tensor, gt: torch.Tensor, src: torch.Tensor, tgt: torch.Tensor,
                     raw: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """RPM-Net's modified Chamfer distance (Yew & Lee 2020).

    mean_i min_j |T_pred(x_i) - T_gt(r_j)|^2 + mean_k min_j |y_k - T_pred(r_j)|^2, where `x` =
    `src` [B, N, 3] and `y` = `tgt` [B, M, 3] are the (possibly noisy, cropped) inputs and `r` =
    `raw` [B, P, 3] the clean, complete source shape, so `T_gt(r)` is the clean reference.
    `pred` [K, B, 4, 4], `gt` [B, 4, 4]. Returns [K, B]. Chunked over B to bound memory.
    """
    parts = []
    for start in range(0, gt.shape[0], chunk):
        sl = slice(start, start + chunk)
        p, g = pred[:, sl], gt[sl]
        ref_clean = apply(g, raw[sl])[None]  # [1, b, P, 3]
        a = torch.cdist(apply(p, src[sl][None]), ref_clean.expand(p.shape[0], -1, -1, -1))
        b = torch.cdist(tgt[sl][None].expand(p.shape[0], -1, -1, -1), apply(p, raw[sl][None]))
        parts.append(a.amin(-1).pow(2).mean(-1) + b.amin(-1).pow(2).mean(-1))
    return torch.cat(parts, dim=1)
