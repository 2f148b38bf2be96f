"""Sampling regions and distributions of the spaces, against values worked out by hand.

- ``radius`` of each space computed from its definition (box half-diagonal, ball, angle, ...).
- Distributions checked by their moments. A sample mean of ``N`` draws of a variable with
  variance ``v`` has standard error ``sqrt(v / N)``; each check allows ``Z = 5`` standard errors
  (a false alarm has probability below 1e-6, and the seeds are fixed anyway). A sampler that
  always returns the largest angle, or a wrong variance, misses by tens of standard errors.
- The rotation convention (body frame, ``R* exp(delta)``) through a case where the two sides
  give different matrices, written out by hand.
"""

from __future__ import annotations

import math

import pytest
import roma
import torch
from scipy import stats

from dlc import Euclidean, Homography, RigidTransform, Rotation, Simplex

D64 = torch.float64
N = 20000
Z = 5.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_mean(samples: torch.Tensor, mean: float, var: float) -> None:
    """The sample mean of ``samples`` (any shape) is within Z standard errors of ``mean``."""
    n = samples.numel()
    tol = Z * math.sqrt(var / n)
    assert abs(samples.mean().item() - mean) <= tol, (samples.mean().item(), mean, tol)


def eye_rotations(batch: int) -> torch.Tensor:
    return torch.eye(3, dtype=D64).repeat(batch, 1, 1)


# ----- radius: the size of each sampling region, by hand ------------------------------------

@pytest.mark.parametrize("space, target, expected", [
    # uniform box [-s, s]^D: half-diagonal s sqrt(D)
    (Euclidean(scale=0.5), torch.zeros(2, 3), 0.5 * math.sqrt(3)),
    (Euclidean(scale=0.5, event_dims=2), torch.zeros(2, 2, 3), 0.5 * math.sqrt(6)),
    # relative box: |r * w*| <= s |w*| with w* = (3, 4): 0.1 * 5
    (Euclidean(scale=0.1, relative=True), torch.tensor([[3.0, 4.0]]), 0.5),
    # normal: ball of 3 standard deviations per coordinate, 3 s sqrt(D) = 3 * 0.5 * 2
    (Euclidean(scale=0.5, distribution="normal"), torch.zeros(2, 4), 3.0),
    # relative normal: 3 s sqrt(D) max|w*| = 3 * 0.1 * sqrt(2) * 4
    (Euclidean(scale=0.1, distribution="normal", relative=True), torch.tensor([[3.0, -4.0]]),
     1.2 * math.sqrt(2)),
    # homography: the box [-4, 4]^8 of corner offsets: 4 sqrt(8)
    (Homography(scale=4.0), torch.zeros(2, 4, 2), 8 * math.sqrt(2)),
    # softmax simplex: the logit box [-0.05, 0.05]^4: 0.05 * 2
    (Simplex(scale=0.05), torch.full((2, 4), 0.25), 0.1),
    # mixture: scale times the simplex diameter (two vertices are sqrt(2) apart)
    (Simplex(scale=0.5, mode="mixture"), torch.full((2, 4), 0.25), 0.5 * math.sqrt(2)),
    # rotation: the largest angle
    (Rotation(max_angle=0.3), eye_rotations(2), 0.3),
    # rigid: sqrt(angle^2 + weight * translation^2) = sqrt(0.09 + 2 * 0.16)
    (RigidTransform(max_angle=0.3, max_translation=0.4, translation_weight=2.0),
     torch.eye(4, dtype=D64).repeat(2, 1, 1), math.sqrt(0.41)),
])
def test_radius_by_hand(space, target, expected: float) -> None:
    radius = space.radius(target.to(D64))
    assert radius.shape == (target.shape[0],)
    torch.testing.assert_close(radius, torch.full_like(radius, expected))


# ----- distributions by their moments -------------------------------------------------------

def test_euclidean_uniform_and_normal_moments() -> None:
    w = torch.zeros(N, 2, dtype=D64)
    s = 0.5
    uniform = Euclidean(scale=s).sample(w, 1, gen())
    # U(-s, s): mean 0, variance s^2/3; the square has mean s^2/3 and variance 4 s^4 / 45
    assert uniform.abs().max() <= s
    assert_mean(uniform, 0.0, s**2 / 3)
    assert_mean(uniform**2, s**2 / 3, 4 * s**4 / 45)
    normal = Euclidean(scale=s, distribution="normal").sample(w, 1, gen())
    # N(0, s^2): the square has mean s^2 and variance 2 s^4
    assert_mean(normal, 0.0, s**2)
    assert_mean(normal**2, s**2, 2 * s**4)


def test_relative_noise_is_scaled_by_the_target() -> None:
    w = torch.tensor([[2.0, -10.0]], dtype=D64)
    r = Euclidean(scale=0.1, relative=True).sample(w, N, gen())[:, 0]  # [N, 2]
    # delta_i = r_i w*_i with r ~ U(-0.1, 0.1): E[delta_i^2] = 0.01/3 * w*_i^2
    for i, wi in enumerate((2.0, -10.0)):
        assert_mean(r[:, i] ** 2, 0.01 / 3 * wi**2, 4 * 0.1**4 * wi**4 / 45)


def test_rotation_uniform_angle_and_axis_moments() -> None:
    m = 0.8
    delta = Rotation(max_angle=m).sample(eye_rotations(1), N, gen())[:, 0]  # [N, 3]
    angle = delta.norm(dim=-1)
    axis = delta / angle[:, None]
    # angle ~ U(0, m): mean m/2, variance m^2/12
    assert angle.max() <= m
    assert_mean(angle, m / 2, m**2 / 12)
    # axis uniform on the unit sphere: E[a] = 0 (each coordinate has variance 1/3);
    # E[a_i^2] = 1/3 (variance E[a^4] - 1/9 = 1/5 - 1/9 = 4/45); E[a_i a_j] = 0 (variance 1/15)
    for i in range(3):
        assert_mean(axis[:, i], 0.0, 1 / 3)
        assert_mean(axis[:, i] ** 2, 1 / 3, 4 / 45)
        assert_mean(axis[:, i] * axis[:, (i + 1) % 3], 0.0, 1 / 15)


def test_rotation_normal_components_moments() -> None:
    m = 0.9
    delta = Rotation(max_angle=m, distribution="normal").sample(eye_rotations(1), N, gen())[:, 0]
    # each component N(0, (m/3)^2), the vector clamped to norm m: |delta|^2 = (m/3)^2 min(X, 9)
    # with X ~ chi^2_3, and E[min(X, 9)] = 3 - E[(X - 9)+] = 3 - (3 sf_5(9) - 9 sf_3(9))
    # (x f_3(x) = 3 f_5(x) for chi-square densities)
    capped = 3 - (3 * stats.chi2.sf(9, 5) - 9 * stats.chi2.sf(9, 3))
    sq = delta.pow(2).sum(-1)
    assert sq.max() <= m**2 * (1 + 1e-12)
    assert_mean(delta, 0.0, (m / 3) ** 2)
    assert_mean(sq, (m / 3) ** 2 * capped, 2 * 3 * (m / 3) ** 4)  # Var(X) = 6 bounds it


def test_rigid_transform_moments() -> None:
    space = RigidTransform(max_angle=0.6, max_translation=0.2)
    delta = space.sample(torch.eye(4, dtype=D64)[None], N, gen())[:, 0]  # [N, 6]
    angle, shift = delta[:, :3].norm(dim=-1), delta[:, 3:].norm(dim=-1)
    assert_mean(angle, 0.3, 0.36 / 12)
    assert_mean(shift, 0.1, 0.04 / 12)
    direction = delta[:, 3:] / shift[:, None]
    for i in range(3):
        assert_mean(direction[:, i], 0.0, 1 / 3)
        assert_mean(direction[:, i] ** 2, 1 / 3, 4 / 45)


def test_simplex_mixture_moments() -> None:
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=D64)
    s = 0.6
    delta = Simplex(scale=s, mode="mixture").sample(w, N, gen())[:, 0]  # [N, 4]
    # delta = a (q - w*), a ~ U(0, s), q ~ Dirichlet(1,1,1,1) independent: E[q] = 1/4,
    # so E[delta] = s/2 (1/4 - w*). Coordinate 1: a q_1 with E[a^2] = s^2/3, E[q_1^2] = 2/20
    # (Dirichlet(1^4): Var q = 3/80, so E[q^2] = 3/80 + 1/16 = 1/10): variance < s^2/30
    assert_mean(delta[:, 1], s / 8, s**2 / 30)
    assert_mean(delta[:, 0], s / 2 * (0.25 - 1), s**2 / 3)
    torch.testing.assert_close(delta.sum(-1), torch.zeros(N, dtype=D64))


def test_antithetic_pairs_and_uniform_moments() -> None:
    w = torch.zeros(1, 3, dtype=D64)
    delta = Euclidean(scale=0.2, antithetic=True).sample(w, 2 * N // 4, gen())
    half = delta.shape[0] // 2
    torch.testing.assert_close(delta[half:], -delta[:half])
    assert_mean(delta[:half] ** 2, 0.04 / 3, 4 * 0.2**4 / 45)


# ----- the rotation convention --------------------------------------------------------------

def rot_z90() -> torch.Tensor:
    return torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=D64)


def test_rotation_retraction_is_in_the_body_frame() -> None:
    # R* = 90 degrees about z, delta = angle a about x. Body frame: R* Rx(a); the world frame
    # Rx(a) R* is a different matrix (rotations about different axes do not commute).
    a = 0.3
    c, s = math.cos(a), math.sin(a)
    body = torch.tensor([[0.0, -c, s], [1.0, 0.0, 0.0], [0.0, s, c]], dtype=D64)
    world = torch.tensor([[0.0, -1.0, 0.0], [c, 0.0, -s], [s, 0.0, c]], dtype=D64)
    assert (body - world).abs().max() > 0.1
    delta = torch.tensor([[[a, 0.0, 0.0]]], dtype=D64)
    out = Rotation().retract(rot_z90()[None], delta, 1.0)[0, 0]
    torch.testing.assert_close(out, body)
    # the body x axis stays R* e_x = e_y; the image of e_x is not moved by the perturbation
    torch.testing.assert_close(out[:, 0], torch.tensor([0.0, 1.0, 0.0], dtype=D64))
    half = Rotation().retract(rot_z90()[None], delta, 0.5)[0, 0]
    torch.testing.assert_close(half.T @ out, roma.rotvec_to_rotmat(delta[0, 0] / 2))


def test_rigid_transform_retraction_is_in_the_body_frame() -> None:
    a = 0.3
    c, s = math.cos(a), math.sin(a)
    target = torch.eye(4, dtype=D64)
    target[:3, :3] = rot_z90()
    target[:3, 3] = torch.tensor([1.0, 2.0, 3.0], dtype=D64)
    delta = torch.tensor([[[a, 0.0, 0.0, 0.5, -1.0, 2.0]]], dtype=D64)
    out = RigidTransform().retract(target[None], delta, 1.0)[0, 0]
    expected = torch.tensor([[0.0, -c, s, 1.5], [1.0, 0.0, 0.0, 1.0], [0.0, s, c, 5.0],
                             [0.0, 0.0, 0.0, 1.0]], dtype=D64)
    torch.testing.assert_close(out, expected)
