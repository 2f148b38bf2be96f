"""Label spaces: sampling regions, retractions along geodesics, norms and shape checks."""

from __future__ import annotations

import math

import pytest
import roma
import torch

from dlc import Euclidean, Homography, RigidTransform, Rotation, Simplex

D64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rotations(batch: int = 5) -> torch.Tensor:
    return roma.random_rotmat(batch, dtype=D64, generator=gen(1))


def rigid(batch: int = 5) -> torch.Tensor:
    out = torch.eye(4, dtype=D64).repeat(batch, 1, 1)
    out[:, :3, :3] = rotations(batch)
    out[:, :3, 3] = torch.randn(batch, 3, dtype=D64, generator=gen(2))
    return out


def test_rotation_retraction_is_the_geodesic() -> None:
    space, r_star = Rotation(max_angle=1.0), rotations()
    delta = space.sample(r_star, 4, gen())
    assert delta.shape == (4, 5, 3)
    angles = delta.norm(dim=-1)
    assert (angles <= 1.0).all() and (angles > 0).all()
    end = space.retract(r_star, delta, 1.0)
    torch.testing.assert_close(end, r_star @ roma.rotvec_to_rotmat(delta))
    torch.testing.assert_close(space.distance(r_star, end), angles)
    torch.testing.assert_close(space.sqnorm(r_star, delta), angles**2)
    torch.testing.assert_close(space.retract(r_star, delta, 0.0), r_star.expand(4, 5, 3, 3))
    torch.testing.assert_close(space.distance(r_star, space.retract(r_star, delta, 0.5)),
                               angles / 2)
    mid = space.retract(r_star, delta, torch.tensor(0.5, dtype=D64))
    torch.testing.assert_close(space.distance(mid, end), angles / 2)
    assert roma.is_rotation_matrix(end, epsilon=1e-9)


def test_rotation_project_clamps_the_angle_and_check_rejects_non_rotations() -> None:
    space, r_star = Rotation(max_angle=0.5), rotations()
    big = torch.tensor([[[3.0, 0.0, 0.0]]], dtype=D64).expand(1, 5, 3)
    torch.testing.assert_close(space.project(r_star, big).norm(dim=-1),
                               torch.full((1, 5), 0.5, dtype=D64))
    with pytest.raises(ValueError, match="rotation matrices"):
        space.check(2 * r_star)
    with pytest.raises(ValueError, match=r"\[B, 3, 3\], got \[5, 9\]"):
        space.check(r_star.flatten(1))
    with pytest.raises(ValueError, match="max_angle"):
        Rotation(max_angle=4.0)


def test_rigid_transform_retraction_is_the_product_geodesic() -> None:
    space, t_star = RigidTransform(max_angle=0.8, max_translation=0.3, translation_weight=2.0), \
        rigid()
    space.check(t_star)
    delta = space.sample(t_star, 3, gen())
    w, v = delta[..., :3], delta[..., 3:]
    assert (w.norm(dim=-1) <= 0.8).all() and (v.norm(dim=-1) <= 0.3).all()
    end = space.retract(t_star, delta, 1.0)
    torch.testing.assert_close(end[..., :3, :3], t_star[:, :3, :3] @ roma.rotvec_to_rotmat(w))
    torch.testing.assert_close(end[..., :3, 3], t_star[:, :3, 3] + v)
    torch.testing.assert_close(end[..., 3, :], t_star[:, 3, :].expand(3, 5, 4))
    torch.testing.assert_close(space.retract(t_star, delta, 0.0), t_star.expand(3, 5, 4, 4))
    norm = space.sqnorm(t_star, delta).sqrt()
    torch.testing.assert_close(norm**2, w.pow(2).sum(-1) + 2.0 * v.pow(2).sum(-1))
    torch.testing.assert_close(space.distance(t_star, end), norm)
    torch.testing.assert_close(space.distance(t_star, space.retract(t_star, delta, 0.25)),
                               norm / 4)
    bad = t_star.clone()
    bad[:, 3, 0] = 1.0
    with pytest.raises(ValueError, match="last row"):
        space.check(bad)


def test_simplex_mixture_stays_on_the_simplex() -> None:
    space = Simplex(scale=1.0, mode="mixture")
    w = torch.softmax(torch.randn(6, 4, dtype=D64, generator=gen(3)), -1)
    w[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # a one-hot label too
    delta = space.sample(w, 5, gen())
    for lam in (0.0, 0.3, 1.0):
        p = space.retract(w, delta, lam)
        assert (p >= -1e-12).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(5, 6, dtype=D64))
    projected = space.project(w, 3 * delta)
    p = space.retract(w, projected, 1.0)
    assert (p >= -1e-12).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(5, 6, dtype=D64))
    torch.testing.assert_close(space.project(w, delta), delta)  # already inside: unchanged
    torch.testing.assert_close(space.sqnorm(w, delta), delta.pow(2).sum(-1))


def test_simplex_softmax_mode_is_the_authors_projection() -> None:
    w = torch.eye(3, dtype=D64)
    delta = Simplex(scale=0.05).sample(w, 2, gen())
    assert delta.abs().max() <= 0.05
    for norm, expected in [("projected", (torch.softmax(w + delta, -1) - w).pow(2).sum(-1)),
                           ("noise", delta.pow(2).sum(-1))]:
        space = Simplex(scale=0.05, norm=norm)
        torch.testing.assert_close(space.retract(w, delta, 0.5), torch.softmax(w + delta / 2, -1))
        torch.testing.assert_close(space.sqnorm(w, delta), expected)
    with pytest.raises(ValueError, match="probability vectors"):
        Simplex().check(2 * w)


def test_euclidean_relative_noise_is_multiplicative() -> None:
    space = Euclidean(scale=0.1, relative=True)
    w = torch.randn(4, 8, dtype=D64, generator=gen(4))
    w[0, 0] = 0.0
    delta = space.sample(w, 3, gen())
    r = delta / torch.where(w == 0, 1.0, w)
    assert (r.abs() <= 0.1).all() and (delta[:, 0, 0] == 0).all()
    torch.testing.assert_close(space.retract(w, delta, 1.0), w * (1 + r))
    torch.testing.assert_close(space.sqnorm(w, delta), r.pow(2).sum(-1))
    torch.testing.assert_close(space.project(w, 5 * delta), w * (5 * r).clamp(-0.1, 0.1))


def test_euclidean_antithetic_pairs_cancel() -> None:
    space = Euclidean(scale=0.2, antithetic=True)
    w = torch.zeros(3, 5)
    delta = space.sample(w, 4, gen())
    torch.testing.assert_close(delta[:2] + delta[2:], torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match="even number of samples, got 3"):
        space.sample(w, 3, gen())


def test_euclidean_distributions_and_projection() -> None:
    w = torch.zeros(2000, 4, dtype=D64)
    uniform = Euclidean(scale=0.5).sample(w, 1, gen())
    assert uniform.abs().max() <= 0.5 and uniform.std() == pytest.approx(0.5 / math.sqrt(3),
                                                                          rel=0.05)
    normal_space = Euclidean(scale=0.5, distribution="normal")
    normal = normal_space.sample(w, 1, gen())
    assert normal.std() == pytest.approx(0.5, rel=0.05)
    far = normal_space.project(w, 100 * normal)
    assert far.norm(dim=-1).max() == pytest.approx(3 * 0.5 * 2)
    torch.testing.assert_close(Euclidean(scale=0.5).project(w, 10 * uniform).abs().amax(),
                               torch.tensor(0.5, dtype=D64))


def test_sampling_is_reproducible_and_keeps_dtype() -> None:
    w = torch.randn(3, 2)
    for space in (Euclidean(), Simplex(mode="mixture")):
        target = torch.softmax(w, -1) if isinstance(space, Simplex) else w
        a, b = space.sample(target, 2, gen(7)), space.sample(target, 2, gen(7))
        torch.testing.assert_close(a, b)
        assert a.dtype == torch.float32


def test_homography_is_euclidean_on_corner_offsets() -> None:
    space = Homography(scale=2.0)
    corners = torch.randn(3, 4, 2, generator=gen(5)) * 10
    space.check(corners)
    delta = space.sample(corners, 2, gen())
    assert delta.shape == (2, 3, 4, 2) and delta.abs().max() <= 2.0
    torch.testing.assert_close(space.retract(corners, delta, 0.5), corners + delta / 2)
    torch.testing.assert_close(space.sqnorm(corners, delta), delta.pow(2).sum((-1, -2)))
    with pytest.raises(ValueError, match=r"\[B, 4, 2\], got \[3, 8\]"):
        space.check(corners.flatten(1))
