"""Homography geometry in the 4-corner parametrisation, through `kornia`.

Convention (shared by the generator, the loaders, the models and the metrics). A pair is an input
image of size s x s and a template of size t x t (t <= s). Pixel coordinates are (x, y) of pixel
centres, 0 .. size-1 (`align_corners=True`). The canonical corners of the template inside the input
are c0 = margin + {(0, 0), (t-1, 0), (0, t-1), (t-1, t-1)} (TL, TR, BL, BR), margin = (s - t) / 2.
The label w [.., 4, 2] (px) says that template corner k sits at input point c0_k + w_k; the
homography H (template px -> input px) is the DLT through these 4 correspondences, and
template(x) = B(H x), B being the (other-modality) image the input was cut from.
This is the DLKN layout (Zhao et al., CVPR 2021): margin 32, t = 128, s = 192; DHN's (DeTone et al.
2016) is the special case s = t, margin 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import get_perspective_transform


def template_corners(t: int, like: torch.Tensor) -> torch.Tensor:
    """[4, 2] corners (TL, TR, BL, BR) of a t x t template in its own pixel coordinates."""
    e = float(t - 1)
    return torch.tensor([[0.0, 0.0], [e, 0.0], [0.0, e], [e, e]], dtype=like.dtype,
                        device=like.device)


def canonical_corners(s: int, t: int, like: torch.Tensor) -> torch.Tensor:
    """[4, 2] canonical corners c0 of the template inside the s x s input."""
    return template_corners(t, like) + (s - t) / 2.0


def offsets_to_homography(w: torch.Tensor, s: int, t: int) -> torch.Tensor:
    """Corner offsets w [..., 4, 2] (px) -> H [..., 3, 3] mapping template px to input px (DLT)."""
    lead = w.shape[:-2]
    flat = w.reshape(-1, 4, 2)
    src = template_corners(t, w).expand_as(flat)
    dst = canonical_corners(s, t, w) + flat
    return get_perspective_transform(src, dst).reshape(*lead, 3, 3)


def homography_to_offsets(hom: torch.Tensor, s: int, t: int) -> torch.Tensor:
    """H [..., 3, 3] (template px -> input px) -> corner offsets [..., 4, 2] (px)."""
    lead = hom.shape[:-2]
    flat = hom.reshape(-1, 3, 3)
    corners = template_corners(t, hom).expand(flat.shape[0], 4, 2)
    return (transform_points(flat, corners) - canonical_corners(s, t, hom)).reshape(*lead, 4, 2)


def pixel_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """[h * w, 2] pixel-centre coordinates (x, y), row-major."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=like.dtype, device=like.device),
                            torch.arange(w, dtype=like.dtype, device=like.device), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def sample_at(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of image [B, C, H, W] at points [B, N, 2] (px) -> [B, C, N] (zero padding).

    Differentiable w.r.t. both arguments.
    """
    if image.device.type == "cpu" and not torch.isfinite(points).all():
        raise FloatingPointError("sample_at: non-finite sampling points")  # grid_sample would segfault
    _, _, h, w = image.shape
    scale = points.new_tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = (points * scale - 1.0)[:, None]  # [B, 1, N, 2]
    out = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out[:, :, 0]


def mace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean average corner error (px): mean over the 4 corners of |a_k - b_k|_2; [..., 4, 2] -> [...]."""
    return (a - b).pow(2).sum(-1).sqrt().mean(-1)
