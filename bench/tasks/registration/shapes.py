"""A synthetic, offline, ModelNet-like shape set (stand-in for ModelNet40, Wu et al. 2015).

Every shape is a union of superquadric parts (single-part families: ellipsoids, cuboids,
cylinders, star-like and prism-like solids; multi-part families mimicking ModelNet classes: table,
chair, lamp, airplane, mug), with random proportions, then bent by a random smooth quadratic warp
`p -> p + A(p, p)` that breaks every symmetry of the primitives (so the ground-truth rotation is
unique), centred and scaled into the unit sphere, as in the ModelNet40 HDF5 files. Points are
sampled on the surface (parametrically, part-area weighted) with their outward normals.

Labels are family indices in `FAMILIES` order; the order interleaves single-part and composite
families so that the first half / second half split (the ModelNet "unseen categories" protocol,
labels < 20 / >= 20) holds both kinds on each side.
"""

from __future__ import annotations

import numpy as np

from bench.tasks.registration.pairs import uniform_rotation

FAMILIES = ("ellipsoid", "cuboid", "table", "chair", "star",
            "cylinder", "prism", "lamp", "airplane", "mug")

Part = tuple[np.ndarray, float, float, np.ndarray, np.ndarray]  # size a [3], e1, e2, R [3,3], c [3]


def _spow(x: np.ndarray, p: float) -> np.ndarray:
    return np.sign(x) * np.abs(x) ** p


def superquadric(a: np.ndarray, e1: float, e2: float, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` surface points [n, 3] and unit normals [n, 3] of the superquadric
    |x/a1|^(2/e2) + |y/a2|^(2/e2))^(e2/e1) + |z/a3|^(2/e1) = 1 (parametric sampling)."""
    eta = np.arcsin(rng.uniform(-1.0, 1.0, n))
    omega = rng.uniform(-np.pi, np.pi, n)
    ce, se, cw, sw = np.cos(eta), np.sin(eta), np.cos(omega), np.sin(omega)
    pts = np.stack([a[0] * _spow(ce, e1) * _spow(cw, e2), a[1] * _spow(ce, e1) * _spow(sw, e2),
                    a[2] * _spow(se, e1)], axis=1)
    nrm = np.stack([_spow(ce, 2 - e1) * _spow(cw, 2 - e2) / a[0],
                    _spow(ce, 2 - e1) * _spow(sw, 2 - e2) / a[1], _spow(se, 2 - e1) / a[2]], axis=1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True).clip(1e-12)
    return pts, nrm


def _part(a, e1=0.2, e2=0.2, centre=(0.0, 0.0, 0.0), rot=None) -> Part:
    return (np.asarray(a, float), float(e1), float(e2),
            np.eye(3) if rot is None else rot, np.asarray(centre, float))


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def family_parts(family: str, rng: np.random.Generator) -> list[Part]:
    """The superquadric parts of one random instance of `family` (before warping)."""
    u = rng.uniform
    size = np.sort(u(0.3, 1.0, 3))[rng.permutation(3)]
    if family == "ellipsoid":
        return [_part(size, u(0.7, 1.2), u(0.7, 1.2))]
    if family == "cuboid":
        return [_part(size, u(0.1, 0.35), u(0.1, 0.35))]
    if family == "cylinder":
        return [_part(size, u(0.1, 0.3), u(0.8, 1.2))]
    if family == "star":
        return [_part(size, u(1.4, 1.9), u(1.4, 1.9))]
    if family == "prism":
        return [_part(size, u(0.1, 0.3), u(1.4, 1.9))]
    if family in ("table", "chair"):
        w, d, h = u(0.6, 1.0), u(0.4, 0.8), u(0.4, 0.8)
        top = u(0.03, 0.08)
        leg = u(0.03, 0.07)
        parts = [_part((w, d, top), centre=(0, 0, h))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                parts.append(_part((leg, leg, h / 2), 0.2, 1.0,
                                   centre=(sx * (w - leg), sy * (d - leg), h / 2)))
        if family == "chair":
            back = u(0.5, 0.9)
            parts.append(_part((w, top, back), centre=(0, d - top, h + back)))
        return parts
    if family == "lamp":
        base, stem = u(0.3, 0.5), u(0.6, 1.0)
        return [_part((base, base * u(0.6, 1.0), 0.05), 0.2, 1.0),
                _part((0.04, 0.04, stem / 2), 0.2, 1.0, centre=(0, 0, stem / 2)),
                _part((u(0.2, 0.35), u(0.2, 0.35), u(0.15, 0.3)), u(0.3, 1.0), 1.0,
                      centre=(u(0.1, 0.3), 0, stem), rot=_rot_x(u(0.3, 0.8)))]
    if family == "airplane":
        length, span = u(0.8, 1.0), u(0.7, 1.0)
        return [_part((length, u(0.08, 0.14), u(0.08, 0.14)), 1.0, 1.0),
                _part((u(0.12, 0.2), span, 0.02), 0.3, 0.3, centre=(u(-0.1, 0.2), 0, 0)),
                _part((0.08, u(0.2, 0.35), 0.02), 0.3, 0.3, centre=(-length + 0.1, 0, 0.02)),
                _part((0.1, 0.02, u(0.15, 0.25)), 0.3, 0.3, centre=(-length + 0.1, 0, 0.15))]
    if family == "mug":
        r, h = u(0.3, 0.5), u(0.4, 0.8)
        return [_part((r, r * u(0.8, 1.0), h), 0.1, 1.0),
                _part((u(0.15, 0.25), 0.04, h * u(0.4, 0.7)), 0.6, 0.6,
                      centre=(r + 0.1, 0, u(-0.1, 0.1)))]
    raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")


def _part_area(a: np.ndarray) -> float:
    """Rough surface-area proxy of a part (box area), used to spread points over parts."""
    return float(a[0] * a[1] + a[1] * a[2] + a[0] * a[2])


def sample_shape(family: str, n_points: int, rng: np.random.Generator,
                 asymmetry: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """One random instance of `family`: points [n_points, 3] and unit normals [n_points, 3],
    randomly oriented, warped by `asymmetry`, centred (bounding-box centre) and scaled so the
    farthest point is at distance 1."""
    parts = family_parts(family, rng)
    area = np.array([_part_area(p[0]) for p in parts])
    counts = rng.multinomial(n_points, area / area.sum())
    pts, nrm = [], []
    for (a, e1, e2, rot, centre), k in zip(parts, counts):
        p, n = superquadric(a, e1, e2, int(k), rng)
        pts.append(p @ rot.T + centre)
        nrm.append(n @ rot.T)
    points, normals = np.concatenate(pts), np.concatenate(nrm)
    points = points - (points.max(0) + points.min(0)) / 2
    points /= np.linalg.norm(points, axis=1).max()
    # quadratic warp f(p) = p + sum_k e_k p^T A_k p: asymmetric; normals map by J^-T
    coef = rng.uniform(-asymmetry, asymmetry, size=(3, 3, 3))
    coef = (coef + coef.transpose(0, 2, 1)) / 2
    warped = points + np.einsum("kij,ni,nj->nk", coef, points, points)
    jac = np.eye(3)[None] + 2 * np.einsum("kij,nj->nki", coef, points)  # [n, 3, 3]
    normals = np.linalg.solve(jac.transpose(0, 2, 1), normals[..., None])[..., 0]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    rot = uniform_rotation(rng)
    warped, normals = warped @ rot.T, normals @ rot.T
    warped = warped - (warped.max(0) + warped.min(0)) / 2
    warped /= np.linalg.norm(warped, axis=1).max()
    order = rng.permutation(n_points)
    return warped[order].astype(np.float32), normals[order].astype(np.float32)


def make_shapes(n_per_family: int, families: tuple[int, ...], n_points: int, seed: int,
                asymmetry: float = 0.2) -> dict[str, np.ndarray]:
    """`n_per_family` shapes of each family index in `families`.

    Returns `data` [S, n_points, 3], `normal` [S, n_points, 3] (float32), `label` [S] (int64):
    the ModelNet40 HDF5 layout.
    """
    rng = np.random.default_rng(seed)
    data, normal, label = [], [], []
    for fam in families:
        for _ in range(n_per_family):
            p, n = sample_shape(FAMILIES[fam], n_points, rng, asymmetry)
            data.append(p)
            normal.append(n)
            label.append(fam)
    return {"data": np.stack(data), "normal": np.stack(normal),
            "label": np.asarray(label, dtype=np.int64)}
