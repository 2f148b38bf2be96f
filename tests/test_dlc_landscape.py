"""Landscape diagnostics: star-convexity violation rate and slices."""

from __future__ import annotations

import pytest
import roma
import torch

from dlc import Euclidean, Rotation, slice_1d, slice_2d, violation_rate

D64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def target(batch: int = 4, dim: int = 3) -> torch.Tensor:
    return torch.randn(batch, dim, dtype=D64, generator=gen(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quadratic_is_exactly_two_strongly_star_convex(dtype: torch.dtype) -> None:
    w = target().to(dtype)
    space = Euclidean(scale=0.5)

    def h(x: torch.Tensor) -> torch.Tensor:
        return (x - w).pow(2).sum(-1)

    for mu in (0.0, 1.0, 2.0):
        assert violation_rate(h, w, space, rays=8, points=8, mu=mu, generator=gen()) == 0
    assert violation_rate(h, w, space, rays=8, points=8, mu=3.0, generator=gen()) == 1
    assert violation_rate(h, w, space, rays=8, points=8, mu=2.2, generator=gen()) > 0


def test_squared_geodesic_distance_on_so3_is_two_strongly_star_convex() -> None:
    r_star = roma.random_rotmat(4, dtype=D64, generator=gen(2))
    space = Rotation(max_angle=1.0)

    def h(r: torch.Tensor) -> torch.Tensor:
        return space.distance(r, r_star).pow(2)

    assert violation_rate(h, r_star, space, rays=8, points=8, mu=2.0, generator=gen()) == 0
    assert violation_rate(h, r_star, space, rays=8, points=8, mu=2.5, generator=gen()) > 0


def test_double_well_violates() -> None:
    w = target(batch=8, dim=2)

    def h(x: torch.Tensor) -> torch.Tensor:  # wells at u = 0 (global) and u = 0.6 per coordinate
        u = x - w
        return (u**2 * (u - 0.6) ** 2 + 0.01 * u**2).sum(-1)

    rate = violation_rate(h, w, Euclidean(scale=1.0), rays=16, points=8, generator=gen(),
                          reduce=False)
    assert rate.shape == (8,) and (rate > 0).all() and (rate <= 1).all()


def test_violation_rate_calls_h_once_and_checks_the_ray_minimum() -> None:
    w = target()
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:  # decreasing away from w*: w* is a maximum
        calls.append(x.shape[0])
        return -(x - w).pow(2).sum(-1)

    assert violation_rate(h, w, Euclidean(), rays=5, points=4, generator=gen()) == 1
    assert calls == [1 + 5 * 4]


def test_slices() -> None:
    w = target()
    space = Euclidean(scale=0.5)

    def h(x: torch.Tensor) -> torch.Tensor:
        return (x - w).pow(2).sum(-1)

    ts, values = slice_1d(h, w, space, generator=gen())
    assert ts.shape == (41,) and values.shape == (41, 4)
    # the default direction has the sampling radius as its length: the half-diagonal of the
    # box [-0.5, 0.5]^3, whose square is 3 * 0.5^2 = 0.75
    radius2 = torch.full((4,), 0.75, dtype=D64)
    torch.testing.assert_close(values, ts[:, None] ** 2 * radius2)

    grid, values2 = slice_2d(h, w, space, grid=torch.linspace(-1, 1, 5), generator=gen())
    assert grid.shape == (5,) and values2.shape == (5, 5, 4)
    assert (values2[2, 2] == 0).all()
    # orthogonal directions of equal length: h(g_i d1 + g_j d2) = (g_i^2 + g_j^2) r^2
    expected = (grid[:, None] ** 2 + grid[None, :] ** 2)[..., None] * radius2
    torch.testing.assert_close(values2, expected)
