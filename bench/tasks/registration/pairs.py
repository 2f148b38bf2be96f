"""Registration pairs from shapes, shared by the synthetic set and ModelNet40.

A pair is a source cloud `src` [N, 3], a target cloud `tgt` [M, 3] and the ground truth `transform`
[4, 4] with `tgt ~ R src + t` (exactly, for corresponding points, when noise and cropping are off).
Protocols (each Euler angle U[0, max_angle_deg], R = Rx Ry Rz, t ~ U[-max_translation, +]^3):

* `dcp` (DCP, Wang & Solomon 2019): the first N points of the shape; target = the transformed
  source, randomly permuted; optional jitter N(0, sigma) clipped at `clip`, drawn once and shared
  by both clouds (added to the source before transforming).
* `prnet` (PRNet, Wang & Solomon 2019): `dcp`, then each cloud keeps its `partial` nearest points
  to one random far point (the same point, in the target frame, for both clouds).
* `rpmnet` (RPM-Net, Yew & Lee 2020): source and target resampled independently (N each, no exact
  correspondences), independent jitter, each cropped by its own random plane to `crop` of its
  points.
* `so3`: `dcp` with a uniformly random rotation (any angle).

`raw` [N_raw, 3] is the clean, complete source shape (for the modified Chamfer distance).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

PROTOCOLS = ("dcp", "prnet", "rpmnet", "so3")


def euler_zyx_to_matrix(z: float, y: float, x: float) -> np.ndarray:
    """R = Rx(x) Ry(y) Rz(z) (radians), DCP's composition (scipy's intrinsic 'XYZ')."""
    return Rotation.from_euler("XYZ", [x, y, z]).as_matrix()


def uniform_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation [3, 3]: a normalised Gaussian quaternion (w, x, y, z)."""
    w, x, y, z = rng.standard_normal(4)
    return Rotation.from_quat([x, y, z, w]).as_matrix()  # scipy is scalar-last


def _jitter(shape: tuple[int, ...], sigma: float, clip: float,
            rng: np.random.Generator) -> np.ndarray:
    return np.clip(sigma * rng.standard_normal(shape), -clip, clip)


def _plane_crop(points: np.ndarray, keep: int, rng: np.random.Generator) -> np.ndarray:
    """The `keep` points farthest along a random unit direction (a random plane crop)."""
    normal = rng.standard_normal(3)
    normal /= np.linalg.norm(normal)
    order = np.argsort(-(points @ normal), kind="stable")
    return points[np.sort(order[:keep])]


def make_pair(shape: np.ndarray, protocol: str, num_points: int, rng: np.random.Generator,
              max_angle_deg: float = 45.0, max_translation: float = 0.5, jitter: float = 0.0,
              clip: float = 0.05, partial: int = 768, crop: float = 0.7) -> dict[str, np.ndarray]:
    """One pair from `shape` [P, 3] (P >= num_points). See the module docstring for protocols.

    Returns `src` [N', 3], `tgt` [M', 3], `raw` [N, 3], `transform` [4, 4] (float32).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if shape.shape[0] < num_points:
        raise ValueError(f"shape has {shape.shape[0]} points, the protocol needs {num_points}")
    if protocol == "so3":
        rot = uniform_rotation(rng)
    else:
        z, y, x = np.deg2rad(rng.uniform(0.0, max_angle_deg, 3))
        rot = euler_zyx_to_matrix(z, y, x)
    trans = rng.uniform(-max_translation, max_translation, 3)
    if protocol == "rpmnet":
        raw = shape[rng.choice(shape.shape[0], num_points, replace=False)]
        src = raw
        tgt = shape[rng.choice(shape.shape[0], num_points, replace=False)] @ rot.T + trans
        if jitter > 0:
            src = src + _jitter(src.shape, jitter, clip, rng)
            tgt = tgt + _jitter(tgt.shape, jitter, clip, rng)
        keep = int(round(crop * num_points))
        src, tgt = _plane_crop(src, keep, rng), _plane_crop(tgt, keep, rng)
    else:
        raw = shape[:num_points]
        src = raw + (_jitter(raw.shape, jitter, clip, rng) if jitter > 0 else 0.0)
        tgt = (src @ rot.T + trans)[rng.permutation(num_points)]
        if protocol == "prnet":
            anchor = rng.standard_normal(3)
            anchor = 500.0 * anchor / np.linalg.norm(anchor)
            src_world = src @ rot.T + trans  # pick the same world point for both clouds
            src = src[np.sort(np.argsort(((src_world - anchor) ** 2).sum(1))[:partial])]
            tgt = tgt[np.sort(np.argsort(((tgt - anchor) ** 2).sum(1))[:partial])]
    transform = np.eye(4)
    transform[:3, :3], transform[:3, 3] = rot, trans
    return {"src": src.astype(np.float32), "tgt": tgt.astype(np.float32),
            "raw": raw.astype(np.float32), "transform": transform.astype(np.float32)}


def make_pairs(shapes: np.ndarray, labels: np.ndarray, n_pairs: int, protocol: str,
               num_points: int, seed: int, **options) -> dict[str, np.ndarray]:
    """`n_pairs` pairs cycling over `shapes` [S, P, 3] (pair i uses shape i mod S), stacked:
    `src` [n, N', 3], `tgt` [n, M', 3], `raw` [n, N, 3], `transform` [n, 4, 4], `label` [n].
    `options` go to `make_pair`."""
    rng = np.random.default_rng(seed)
    rows = [make_pair(shapes[i % len(shapes)], protocol, num_points, rng, **options)
            for i in range(n_pairs)]
    out = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    out["label"] = np.asarray([labels[i % len(shapes)] for i in range(n_pairs)], dtype=np.int64)
    return out
