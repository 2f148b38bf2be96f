"""Property-based tests (Hypothesis) of the DLC core over random shapes, S, lam, mu and spaces.

Each property runs a bounded number of derandomized examples (``SETTINGS``), so the file stays
fast and reproducible; widen ``max_examples`` locally to search harder.
"""

from __future__ import annotations

import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlc import Euclidean, Homography, RigidTransform, Rotation, Simplex, StarConvexLoss
from dlc.spaces import Space

D64 = torch.float64
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)

# the spaces on which h = mu'/2 * distance(w, w*)^2 is exactly mu'-strongly star-convex: the
# retraction is the geodesic from w* and sqnorm(delta) is the squared length of that geodesic
GEODESIC_SPACES = {
    "euclidean": lambda: Euclidean(scale=0.7),
    "euclidean_normal": lambda: Euclidean(scale=0.3, distribution="normal"),
    "homography": lambda: Homography(scale=2.0),
    "simplex_mixture": lambda: Simplex(scale=0.8, mode="mixture"),
    "rotation": lambda: Rotation(max_angle=1.2),
    "rigid": lambda: RigidTransform(max_angle=1.0, max_translation=0.5, translation_weight=2.0),
}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def make_target(name: str, batch: int, dim: int, seed: int) -> torch.Tensor:
    """A valid ground truth ``[B, *event]`` for the space ``name``."""
    g = gen(seed)
    if name in ("rotation", "rigid"):
        rot = roma.random_rotmat(batch, dtype=D64, generator=g)
        if name == "rotation":
            return rot
        out = torch.eye(4, dtype=D64).repeat(batch, 1, 1)
        out[:, :3, :3] = rot
        out[:, :3, 3] = torch.randn(batch, 3, dtype=D64, generator=g)
        return out
    if name == "homography":
        return torch.randn(batch, 4, 2, dtype=D64, generator=g) * 10
    if name == "simplex_mixture":
        return torch.softmax(torch.randn(batch, dim + 1, dtype=D64, generator=g), -1)
    return torch.randn(batch, dim, dtype=D64, generator=g)


class FixedDelta(Space):
    """Wraps a space; ``sample`` returns a stored ``delta`` (cast to the target's dtype) so that
    two evaluations (two dtypes, a batch and its rows) see the same perturbations."""

    def __init__(self, inner: Space, delta: torch.Tensor) -> None:
        self.inner, self.delta = inner, delta
        self.event_shape = inner.event_shape

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def check(self, target):
        self.inner.check(target)

    def tangent_shape(self, target):
        return self.inner.tangent_shape(target)

    def sample(self, target, n, generator=None):
        return self.delta[:n].to(target)

    def retract(self, target, delta, lam=1.0):
        return self.inner.retract(target, delta, lam)

    def sqnorm(self, target, delta):
        return self.inner.sqnorm(target, delta)

    def project(self, target, delta):
        return self.inner.project(target, delta)

    def radius(self, target):
        return self.inner.radius(target)

    def distance(self, a, b):
        return self.inner.distance(a, b)


common = {
    "space": st.sampled_from(sorted(GEODESIC_SPACES)),
    "batch": st.integers(1, 4),
    "dim": st.integers(1, 4),
    "samples": st.integers(1, 4),
    "lam": st.floats(0.05, 0.95),
    "seed": st.integers(0, 2**16),
}


@SETTINGS
@given(mu_true=st.floats(0.1, 3.0), fraction=st.floats(0.0, 1.0), **common)
def test_exactly_strongly_star_convex_h_has_no_hinge_up_to_its_modulus(
        space: str, batch: int, dim: int, samples: int, lam: float, seed: int, mu_true: float,
        fraction: float) -> None:
    geometry = GEODESIC_SPACES[space]()
    w = make_target(space, batch, dim, seed)

    def h(x: torch.Tensor) -> torch.Tensor:  # mu_true/2 d(x, w*)^2 + a per-example offset
        return mu_true / 2 * geometry.distance(x, w).pow(2) + torch.arange(batch, dtype=D64)

    ok = StarConvexLoss(geometry, samples=samples, lam=lam, mu=fraction * mu_true)(
        h, w, generator=gen(seed))
    assert ok.hinge.item() <= 1e-9
    # and the bound is tight: a larger modulus violates T2 and T3 wherever delta is not 0
    # (T2 = (mu - mu')/2 n2, T3 = (mu - mu')/2 lam (1 - lam) n2)
    over = StarConvexLoss(geometry, samples=samples, lam=lam, mu=mu_true + 0.5)(
        h, w, generator=gen(seed))
    n2 = geometry.sqnorm(w, over.delta)
    torch.testing.assert_close(over.terms["t2"], 0.25 * n2, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(over.terms["t3"], 0.25 * lam * (1 - lam) * n2, rtol=1e-6,
                               atol=1e-9)


def wiggly(w: torch.Tensor, a: float):
    """A non-convex per-sample loss of any target shape (sum over the event dims)."""
    def h(x: torch.Tensor) -> torch.Tensor:
        u = (x - w).flatten(2)
        return (1 - torch.cos(a * u)).sum(-1) + 0.1 * u.pow(2).sum(-1)
    return h


@SETTINGS
@given(mu=st.floats(0.0, 5.0), a=st.floats(0.5, 8.0),
       aggregate=st.sampled_from(["sum", "max"]), **common)
def test_hinge_terms_are_non_negative_and_total_adds_the_weighted_hinge(
        space: str, batch: int, dim: int, samples: int, lam: float, seed: int, mu: float,
        a: float, aggregate: str) -> None:
    geometry = GEODESIC_SPACES[space]()
    w = make_target(space, batch, dim, seed)
    result = StarConvexLoss(geometry, samples=samples, lam=lam, mu=mu, weight=0.7,
                            aggregate=aggregate)(wiggly(w, a), w, generator=gen(seed))
    for name, term in result.terms.items():
        assert term.shape == (samples, batch), name
        assert (term >= 0).all(), name
    assert result.hinge >= 0
    torch.testing.assert_close(result.total, result.h_star_mean + 0.7 * result.hinge)


@SETTINGS
@given(mu=st.floats(0.0, 5.0), a=st.floats(0.5, 8.0),
       aggregate=st.sampled_from(["sum", "max"]), **common)
def test_batched_loss_equals_a_per_example_loop(
        space: str, batch: int, dim: int, samples: int, lam: float, seed: int, mu: float,
        a: float, aggregate: str) -> None:
    geometry = GEODESIC_SPACES[space]()
    w = make_target(space, batch, dim, seed)
    delta = geometry.sample(w, samples, gen(seed))
    options = {"samples": samples, "lam": lam, "mu": mu, "aggregate": aggregate}
    batched = StarConvexLoss(FixedDelta(geometry, delta), **options)(wiggly(w, a), w)
    rows = [StarConvexLoss(FixedDelta(geometry, delta[:, i:i + 1]), **options)(
        wiggly(w[i:i + 1], a), w[i:i + 1]) for i in range(batch)]
    torch.testing.assert_close(batched.hinge, torch.stack([r.hinge for r in rows]).mean())
    torch.testing.assert_close(batched.h_star_mean, torch.stack([r.h_star_mean for r in rows]).mean())
    for name in batched.terms:
        torch.testing.assert_close(batched.terms[name],
                                   torch.cat([r.terms[name] for r in rows], dim=1))


@SETTINGS
@given(mu=st.floats(0.0, 5.0), a=st.floats(0.5, 4.0), **common)
def test_float32_agrees_with_float64(space: str, batch: int, dim: int, samples: int, lam: float,
                                     seed: int, mu: float, a: float) -> None:
    geometry = GEODESIC_SPACES[space]()
    w = make_target(space, batch, dim, seed)
    delta = geometry.sample(w, samples, gen(seed))
    loss = StarConvexLoss(FixedDelta(geometry, delta), samples=samples, lam=lam, mu=mu)
    r64 = loss(wiggly(w, a), w)
    r32 = loss(wiggly(w.float(), a), w.float())
    assert r32.total.dtype == torch.float32
    # float32 keeps ~7 digits; h sums at most 12 cosines of O(1) arguments: 1e-4 relative
    torch.testing.assert_close(r32.total.double(), r64.total, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(r32.hinge.double(), r64.hinge, rtol=1e-4, atol=1e-4)
