"""The public contract of dlc in detail: defaults, generators, argument errors, the exact
chunking rule, the adversarial ascent step, and each space's small methods (written to kill the
mutants that survived the rest of the suite; see the README's Testing section)."""

from __future__ import annotations

import math

import pytest
import roma
import torch

import dlc.loss
from dlc import (
    Euclidean,
    Homography,
    RigidTransform,
    Rotation,
    Simplex,
    StarConvexLoss,
    slice_1d,
    slice_2d,
)
from dlc.adversarial import projected_ascent
from dlc.functional import aggregate_hinge

D64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rigid_target(batch: int = 3) -> torch.Tensor:
    out = torch.eye(4, dtype=D64).repeat(batch, 1, 1)
    out[:, :3, :3] = roma.random_rotmat(batch, dtype=D64, generator=gen(1))
    out[:, :3, 3] = torch.randn(batch, 3, dtype=D64, generator=gen(2))
    return out


SPACES = {
    "euclidean": (lambda: Euclidean(scale=0.3), lambda: torch.randn(3, 2, dtype=D64)),
    "euclidean_normal": (lambda: Euclidean(scale=0.3, distribution="normal"),
                         lambda: torch.randn(3, 2, dtype=D64)),
    "euclidean_antithetic": (lambda: Euclidean(antithetic=True),
                             lambda: torch.randn(3, 2, dtype=D64)),
    "homography": (lambda: Homography(), lambda: torch.randn(3, 4, 2, dtype=D64)),
    "simplex_softmax": (lambda: Simplex(), lambda: torch.full((3, 4), 0.25, dtype=D64)),
    "simplex_normal": (lambda: Simplex(distribution="normal"),
                       lambda: torch.full((3, 4), 0.25, dtype=D64)),
    "simplex_mixture": (lambda: Simplex(mode="mixture"),
                        lambda: torch.full((3, 4), 0.25, dtype=D64)),
    "rotation": (lambda: Rotation(), lambda: roma.random_rotmat(3, dtype=D64, generator=gen(1))),
    "rotation_normal": (lambda: Rotation(distribution="normal"),
                        lambda: roma.random_rotmat(3, dtype=D64, generator=gen(1))),
    "rigid": (lambda: RigidTransform(), rigid_target),
}


# ----- generators: every draw goes through the given generator ------------------------------

@pytest.mark.parametrize("name", sorted(SPACES))
def test_sampling_uses_only_the_given_generator(name: str) -> None:
    make_space, make_target = SPACES[name]
    space, target = make_space(), make_target()
    torch.manual_seed(1)
    a = space.sample(target, 2, gen(7))
    torch.manual_seed(2)  # a draw from the global generator would differ now
    b = space.sample(target, 2, gen(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (2, 3, *space.tangent_shape(target)) and a.dtype == D64


def test_loss_and_slices_use_only_the_given_generator() -> None:
    w = roma.random_rotmat(3, dtype=D64, generator=gen(1))
    space = Rotation(max_angle=0.8)

    def h(r: torch.Tensor) -> torch.Tensor:  # depends on the direction, not only the angle
        return r[..., 0, 1] + 2 * r[..., 2, 0]

    results = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        results.append((StarConvexLoss(space, samples=2)(h, w, generator=gen(3)).delta,
                        slice_1d(h, w, space, generator=gen(3))[1],
                        slice_2d(h, w, space, grid=torch.linspace(-1, 1, 3),
                                 generator=gen(3))[1]))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the default slice direction is the first sampled perturbation, scaled to the radius 0.8
    d = space.sample(w, 1, gen(3))[0]
    direction = d / d.norm(dim=-1, keepdim=True) * 0.8
    torch.testing.assert_close(results[0][1], slice_1d(h, w, space, direction=direction)[1])


# ----- defaults -----------------------------------------------------------------------------

def test_defaults() -> None:
    loss = StarConvexLoss()
    assert (loss.samples, loss.weight, loss.terms, loss.aggregate, loss.perturbation) == (
        4, 1.0, ("t1", "t2", "t3"), "sum", "random")
    assert (loss.adversarial_steps, loss.adversarial_step_size, loss.chunk_size) == (3, 0.5, None)
    assert loss.lam.item() == 0.5 and loss.mu.item() == 0.0
    assert isinstance(loss.space, Euclidean) and loss.space.scale == 0.05
    assert loss.space.distribution == "uniform" and not loss.space.relative
    assert not loss.space.antithetic and loss.space.event_ndim == 1
    assert Homography().scale == 4.0 and Homography().event_shape == (4, 2)
    assert Rotation().max_angle == 0.5 and Rotation().distribution == "uniform"
    rigid = RigidTransform()
    assert (rigid.max_angle, rigid.max_translation, rigid.translation_weight) == (0.5, 0.1, 1.0)
    simplex = Simplex()
    assert (simplex.scale, simplex.mode, simplex.norm, simplex.distribution) == (
        0.05, "softmax", "projected", "uniform")
    terms = {"t1": torch.tensor([[1.0, 0.0], [2.0, 3.0]])}
    assert aggregate_hinge(terms).item() == pytest.approx(3.0)  # sum over samples: [3, 3]


@pytest.mark.parametrize("name", ["simplex_mixture", "rotation", "rigid", "euclidean"])
def test_retract_defaults_to_the_full_step_and_takes_per_sample_lam(name: str) -> None:
    make_space, make_target = SPACES[name]
    space, target = make_space(), make_target()
    delta = space.sample(target, 2, gen())
    torch.testing.assert_close(space.retract(target, delta), space.retract(target, delta, 1.0))
    # a lam per (sample, example) [n, B] equals the scalar lam where they agree
    lam = torch.tensor([[0.25] * 3, [0.75] * 3], dtype=D64)
    out = space.retract(target, delta, lam)
    torch.testing.assert_close(out[0], space.retract(target, delta, 0.25)[0])
    torch.testing.assert_close(out[1], space.retract(target, delta, 0.75)[1])


def test_fixed_lam_and_mu_are_exact_in_the_target_dtype() -> None:
    w = torch.randn(3, 2, dtype=D64)
    result = StarConvexLoss(lam=0.3, mu=0.3)(lambda x: (x - w).pow(2).sum(-1), w)
    assert result.lam.dtype == D64 and result.lam.item() == 0.3  # not float32(0.3)
    assert result.mu.dtype == D64 and result.mu.item() == 0.3


def test_learnable_mu_is_differentiable_and_in_the_target_dtype() -> None:
    w = torch.randn(3, 2, dtype=D64)
    with pytest.warns(UserWarning, match="learn_mu=True"):
        loss = StarConvexLoss(Euclidean(scale=1.0), mu=3.0, learn_mu=True)
    result = loss(lambda x: (x - w).pow(2).sum(-1), w, generator=gen())
    assert result.mu.dtype == D64 and result.mu.item() == pytest.approx(3.0)  # > 2: hinges on
    assert result.lam.dtype == D64
    result.total.backward()
    assert loss.mu_raw.grad is not None and loss.mu_raw.grad != 0


def test_repr_names_the_configuration() -> None:
    text = repr(StarConvexLoss(Rotation(max_angle=0.25), samples=3, lam=0.3, mu=0.125))
    assert "Rotation(max_angle=0.25, distribution='uniform')" in text
    assert "samples=3, lam=0.3, mu=0.125, weight=1.0" in text
    assert repr(Euclidean()) == ("Euclidean(scale=0.05, distribution='uniform', relative=False, "
                                 "antithetic=False)")
    assert repr(Homography()).startswith("Homography(scale=4.0")
    assert repr(Simplex()) == "Simplex(scale=0.05, mode='softmax', norm='projected')"
    assert repr(RigidTransform()) == ("RigidTransform(max_angle=0.5, max_translation=0.1, "
                                      "translation_weight=1.0)")


# ----- arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: Euclidean(scale=0.0), "scale must be > 0, got 0.0"),
    (lambda: Euclidean(distribution="cauchy"),
     "distribution must be one of ('uniform', 'normal'), got 'cauchy'"),
    (lambda: Euclidean(event_dims=0), "event_dims must be >= 1, got 0"),
    (lambda: Simplex(scale=0.0), "scale must be > 0, got 0.0"),
    (lambda: Simplex(mode="hard"), "mode must be one of ('softmax', 'mixture'), got 'hard'"),
    (lambda: Simplex(norm="l1"), "norm must be one of ('projected', 'noise'), got 'l1'"),
    (lambda: Simplex(distribution="beta"),
     "distribution must be one of ('uniform', 'normal'), got 'beta'"),
    (lambda: Simplex(scale=1.5, mode="mixture"), "mixture mode needs scale in (0, 1], got 1.5"),
    (lambda: Rotation(max_angle=0.0), "max_angle must be in (0, pi) radians, got 0.0"),
    (lambda: Rotation(max_angle=math.pi), "max_angle must be in (0, pi) radians, got 3.14159"),
    (lambda: Rotation(distribution="cauchy"),
     "distribution must be one of ('uniform', 'normal'), got 'cauchy'"),
    (lambda: RigidTransform(max_angle=0.0), "max_angle must be in (0, pi) radians, got 0.0"),
    (lambda: RigidTransform(max_angle=math.pi), "max_angle must be in (0, pi) radians"),
    (lambda: RigidTransform(max_translation=0.0), "max_translation must be > 0, got 0.0"),
    (lambda: RigidTransform(translation_weight=0.0), "translation_weight must be > 0, got 0.0"),
    (lambda: StarConvexLoss(chunk_size=0), "chunk_size must be None or an int >= 1, got 0"),
    (lambda: StarConvexLoss(weight=-1.0), "weight must be >= 0, got -1.0"),
    (lambda: StarConvexLoss(adversarial_step_size=0.0), "adversarial_step_size must be > 0"),
])
def test_argument_errors_name_the_argument(make, message: str) -> None:
    with pytest.raises(ValueError) as info:
        make()
    assert str(info.value).startswith(message)


def test_valid_edge_arguments_are_accepted() -> None:
    assert Simplex(scale=2.0).scale == 2.0  # the scale limit is for the mixture mode only
    assert Simplex(scale=1.0, mode="mixture").scale == 1.0
    assert Rotation(max_angle=3.14).max_angle == 3.14


@pytest.mark.parametrize("space, target, message", [
    (Euclidean(), torch.zeros(3), "Euclidean expects a target of shape [B, D], got [3]"),
    (Euclidean(), "w", "Euclidean expects a target of shape [B, D], got str"),
    (Euclidean(), torch.zeros(2, 3, dtype=torch.int64),
     "Euclidean expects a floating-point target, got torch.int64"),
    (Homography(), torch.zeros(2, 8), "Homography expects a target of shape [B, 4, 2], got [2, 8]"),
    (Simplex(), torch.tensor([[1.5, -0.5]]), "Simplex expects probability vectors (non-negative"),
    (Simplex(), torch.tensor([[0.5, 0.6]]), "Simplex expects probability vectors (non-negative"),
    (Rotation(), torch.eye(3)[None] * 1.005, "Rotation expects rotation matrices (R^T R = I "
                                             "within 0.001), got max |R^T R - I| = 0.01"),
    (RigidTransform(), torch.eye(4)[None] * 1.005, "RigidTransform expects rotation matrices"),
    (RigidTransform(), torch.ones(1, 4, 4) - torch.ones(1, 4, 4) + torch.eye(4) * 1.0
     + torch.tensor([[0, 0, 0, 0]] * 3 + [[0, 0, 1.0, 0]]),
     "RigidTransform expects homogeneous matrices with last row [0, 0, 0, 1]"),
])
def test_target_errors_say_what_was_expected(space, target, message: str) -> None:
    with pytest.raises(ValueError) as info:
        space.check(target)
    assert str(info.value).startswith(message), str(info.value)


def test_edge_targets_are_accepted() -> None:
    Simplex().check(torch.tensor([[1.0, 0.0, 0.0]]))  # one-hot: zeros are allowed
    Simplex().check(torch.tensor([[1.000001, -0.000001]], dtype=D64))  # within -1e-6
    Rotation().check(torch.zeros(0, 3, 3))  # an empty batch
    RigidTransform().check(torch.zeros(0, 4, 4))


# ----- small methods of the spaces ----------------------------------------------------------

def test_tangent_shapes() -> None:
    assert Euclidean(event_dims=2).tangent_shape(torch.zeros(5, 2, 3)) == (2, 3)
    assert Homography().tangent_shape(torch.zeros(5, 4, 2)) == (4, 2)
    assert Simplex().tangent_shape(torch.zeros(5, 7)) == (7,)
    assert Rotation().tangent_shape(torch.zeros(5, 3, 3)) == (3,)
    assert RigidTransform().tangent_shape(torch.zeros(5, 4, 4)) == (6,)


def test_distances_by_hand() -> None:
    a = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    torch.testing.assert_close(Euclidean().distance(a, b), torch.tensor([5.0, 0.0]))
    p = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]])
    torch.testing.assert_close(Simplex().distance(p, q), torch.tensor([math.sqrt(2), 0.0]))
    torch.testing.assert_close(Simplex().distance(p, p), torch.zeros(2))


def test_relative_noise_handles_zero_and_unit_targets() -> None:
    space = Euclidean(scale=0.5, relative=True)
    w = torch.tensor([[1.0, 0.0, 2.0]], dtype=D64)
    delta = torch.tensor([[[0.25, 0.0, -0.5]]], dtype=D64)  # r = (0.25, 0, -0.25)
    torch.testing.assert_close(space.sqnorm(w, delta), torch.tensor([[0.125]], dtype=D64))
    far = torch.tensor([[[3.0, 0.0, 4.0]]], dtype=D64)  # r = (3, 0, 2) -> clamped to 0.5
    torch.testing.assert_close(space.project(w, far),
                               torch.tensor([[[0.5, 0.0, 1.0]]], dtype=D64))


def test_homography_passes_its_options_on() -> None:
    corners = torch.randn(2, 4, 2, dtype=D64, generator=gen(3)) + 5
    delta = Homography(scale=0.1, relative=True).sample(corners, 2, gen())
    assert (delta / corners).abs().max() <= 0.1  # multiplicative noise
    assert (delta / corners).abs().max() > 0.05
    pairs = Homography(antithetic=True).sample(corners, 4, gen())
    torch.testing.assert_close(pairs[2:], -pairs[:2])
    normal = Homography(scale=1.0, distribution="normal").sample(corners, 200, gen())
    assert normal.abs().max() > 1.0  # not the box [-1, 1]


def test_simplex_softmax_sampling_and_projection_are_the_logit_box() -> None:
    w = torch.full((3, 4), 0.25, dtype=D64)
    space = Simplex(scale=0.1)
    delta = space.sample(w, 200, gen())
    assert delta.abs().max() <= 0.1 and delta.abs().max() > 0.09
    assert delta.sum(-1).abs().max() > 1e-3  # logit noise, not a mixture direction
    torch.testing.assert_close(space.project(w, 10 * delta), (10 * delta).clamp(-0.1, 0.1))
    normal = Simplex(scale=0.1, distribution="normal").sample(w, 200, gen())
    assert normal.abs().max() > 0.2  # N(0, 0.1^2) leaves the box [-0.1, 0.1]


def test_simplex_mixture_projection_keeps_the_region_and_fixes_its_points() -> None:
    w = torch.tensor([[0.7, 0.2, 0.1]], dtype=D64)
    space = Simplex(scale=0.5, mode="mixture")
    delta = space.sample(w, 16, gen())
    torch.testing.assert_close(space.project(w, delta), delta)  # inside: unchanged
    far = space.project(w, 10 * delta)
    point = w + far / 0.5  # region = 0.5 * (simplex - w*): w* + delta / 0.5 is on the simplex
    assert (point >= -1e-12).all()
    torch.testing.assert_close(point.sum(-1), torch.ones(16, 1, dtype=D64))


def test_rigid_projection_clamps_rotation_and_translation_separately() -> None:
    space = RigidTransform(max_angle=0.5, max_translation=0.1)
    target = rigid_target(1)
    delta = torch.tensor([[[1.0, 0.0, 0.0, 0.0, 0.0, 5.0],
                           [0.1, 0.2, 0.0, 0.03, 0.0, -0.04]]], dtype=D64).transpose(0, 1)
    out = space.project(target, delta)
    torch.testing.assert_close(out[0, 0], torch.tensor([0.5, 0, 0, 0, 0, 0.1], dtype=D64))
    torch.testing.assert_close(out[1], delta[1])  # inside the region: unchanged


def test_projection_reaches_the_exact_radius_in_float64() -> None:
    w = torch.eye(3, dtype=D64)[None]
    out = Rotation(max_angle=0.3).project(w, torch.tensor([[[3.0, 4.0, 0.0]]], dtype=D64))
    torch.testing.assert_close(out, torch.tensor([[[0.18, 0.24, 0.0]]], dtype=D64), rtol=1e-15,
                               atol=0)


# ----- the loss module ----------------------------------------------------------------------

def test_selected_terms_only_and_the_result_fields() -> None:
    w = torch.randn(3, 2, dtype=D64)

    def h(x: torch.Tensor) -> torch.Tensor:
        return (x - w).pow(2).sum(-1)

    result = StarConvexLoss(Euclidean(scale=1.0), samples=2, terms=("t2",))(h, w, gen())
    assert list(result.terms) == ["t2"]
    torch.testing.assert_close(result.h_star, torch.zeros(3, dtype=D64))
    torch.testing.assert_close(result.h_tilde, result.delta.pow(2).sum(-1))
    torch.testing.assert_close(result.h_lam, 0.25 * result.delta.pow(2).sum(-1))


def test_relative_space_norm_enters_the_margins() -> None:
    w = torch.tensor([[2.0, -4.0], [0.5, 1.0]], dtype=D64)

    def h(x: torch.Tensor) -> torch.Tensor:
        return (x - w).pow(2).sum(-1)

    result = StarConvexLoss(Euclidean(scale=0.2, relative=True), samples=3, mu=40.0)(h, w, gen())
    r2 = (result.delta / w).pow(2).sum(-1)  # the relative norm, not |delta|^2
    expected = torch.relu(-result.delta.pow(2).sum(-1) + 20.0 * r2)
    torch.testing.assert_close(result.terms["t2"], expected)
    assert (expected > 0).any()


@pytest.mark.parametrize("dim, chunks", [
    (55, [9]),      # 9 x 220 000 B = 1.98 MB <= 2 MiB: one call
    (60, [8, 1]),   # 9 x 240 000 B = 2.16 MB > 2 MiB: chunks of 2 MiB // 240 000 B = 8
])
def test_automatic_chunking_rule_by_hand(dim: int, chunks: list[int]) -> None:
    assert dlc.loss.AUTO_CHUNK_BYTES == 2 * 2**20
    w = torch.zeros(1000, dim)  # float32: 4 * 1000 * dim bytes per stacked target
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x.sum(-1)

    StarConvexLoss(samples=4)(h, w, gen())
    assert calls == chunks


def test_targets_over_half_the_chunk_budget_go_one_at_a_time() -> None:
    w = torch.zeros(1, 300_000)  # 1.2 MB per stacked target: 2 MiB // 1.2 MB = 1
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x.sum(-1)

    StarConvexLoss(samples=1)(h, w, gen())
    assert calls == [1, 1, 1]


# ----- the adversarial ascent ---------------------------------------------------------------

def test_one_ascent_step_by_hand() -> None:
    # objective(d) = <c, d> per (sample, example): gradient c, so one normalised step moves each
    # (s, b) by step_size * radius along c / |c|; |c| < 1 on purpose (no normalisation would
    # shrink the step, and a threshold at 1 would freeze it)
    space = Euclidean(scale=10.0)  # radius 10 sqrt(2)
    target = torch.zeros(2, 2, dtype=D64)
    c = torch.tensor([[[0.3, 0.4], [0.0, -0.5]]], dtype=D64)  # [S=1, B=2, 2]
    calls: list[bool] = []

    def objective(d: torch.Tensor) -> torch.Tensor:
        calls.append(d.requires_grad)
        return (c * d).sum(-1)

    start = torch.zeros(1, 2, 2, dtype=D64)
    out = projected_ascent(objective, start, space, target, steps=1, step_size=0.25)
    step = 0.25 * 10 * math.sqrt(2)
    expected = torch.tensor([[[0.6, 0.8], [0.0, -1.0]]], dtype=D64) * step
    torch.testing.assert_close(out, expected)
    assert calls == [True, False]  # steps + 1 evaluations; the last builds no graph


def test_ascent_keeps_the_best_iterate_over_several_steps() -> None:
    # objective = -(|d - p|^2): the iterates approach p, overshoot when the step is too long;
    # the best one seen is returned; two steps of 0.3 sqrt(2) = 0.42 from 0 give the iterates
    # 0, 0.42 and 0.85 along x (three evaluations), of which 0.42 is closest to p
    space = Euclidean(scale=1.0)  # radius sqrt(2) per example
    target = torch.zeros(1, 2, dtype=D64)
    p = torch.tensor([0.5, 0.0], dtype=D64)
    seen: list[torch.Tensor] = []

    def objective(d: torch.Tensor) -> torch.Tensor:
        seen.append(d.detach().clone())
        return -(d - p).pow(2).sum(-1)

    out = projected_ascent(objective, torch.zeros(1, 1, 2, dtype=D64), space, target, steps=2,
                           step_size=0.3)
    assert len(seen) == 3
    values = torch.stack([-(s - p).pow(2).sum(-1) for s in seen])  # [3, 1, 1]
    torch.testing.assert_close(out, seen[int(values.flatten().argmax())])
    torch.testing.assert_close(out, torch.tensor([[[0.3 * math.sqrt(2), 0.0]]], dtype=D64))
    assert not torch.equal(out, seen[-1])  # the last iterate overshot: the best is kept


def test_ascent_stops_when_the_objective_ignores_delta() -> None:
    calls = []

    def objective(d: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.ones(d.shape[:2], dtype=d.dtype, requires_grad=True) * 1.0

    start = torch.full((2, 3, 2), 0.1, dtype=D64)
    out = projected_ascent(objective, start, Euclidean(), torch.zeros(3, 2, dtype=D64), steps=3,
                           step_size=0.5)
    torch.testing.assert_close(out, start)
    assert len(calls) == 1


def test_adversarial_loss_projects_in_relative_coordinates() -> None:
    w = torch.tensor([[2.0, -4.0]], dtype=D64)

    def h(x: torch.Tensor) -> torch.Tensor:
        return 1 - torch.cos(3 * (x - w)).sum(-1)

    result = StarConvexLoss(Euclidean(scale=0.5, relative=True), samples=2,
                            perturbation="adversarial")(h, w, gen())
    assert ((result.delta / w).abs() <= 0.5 + 1e-12).all()


# ----- added after the mutation run: PRISE's T1 margin, argument bounds, lam shapes ----------

def test_prise_t1_margin_by_hand() -> None:
    from dlc.functional import margins

    t = torch.tensor
    m = margins(t([1.0]), t([[3.0], [0.5]]), t([[1.5], [2.0]]), t([[4.0], [1.0]]), t(0.25),
                t(0.5), t1_margin=True)
    # m1 = h* - h_l + mu/2 lam^2 n2 = -0.5 + 0.25 * 0.0625 * 4, -1 + 0.25 * 0.0625 * 1
    torch.testing.assert_close(m["t1"], t([[-0.4375], [-0.984375]]))
    # through the module: h = |w - w*|^2 gives m1 = (mu/2 - 1) lam^2 n2, positive for mu = 3
    w = torch.randn(3, 2, dtype=D64)
    result = StarConvexLoss(Euclidean(scale=1.0), samples=2, mu=3.0, lam=0.25, t1_margin=True)(
        lambda x: (x - w).pow(2).sum(-1), w, gen())
    n2 = result.delta.pow(2).sum(-1)
    torch.testing.assert_close(result.terms["t1"], 0.5 * 0.0625 * n2)


def test_argument_bounds_are_inclusive_where_documented() -> None:
    with pytest.raises(ValueError, match=r"lam must be in \(0, 1\), got 1.0"):
        StarConvexLoss(lam=1.0)
    loss = StarConvexLoss(weight=0.0, adversarial_steps=1, chunk_size=1)
    assert (loss.weight, loss.adversarial_steps, loss.chunk_size) == (0.0, 1, 1)


def test_sampling_without_a_generator_uses_the_global_one() -> None:
    w = torch.zeros(2, 3, dtype=D64)
    for space in (Euclidean(distribution="normal"), Euclidean()):
        torch.manual_seed(5)
        a = space.sample(w, 2)
        torch.manual_seed(5)
        torch.testing.assert_close(a, space.sample(w, 2))


def test_retract_takes_a_lam_per_example() -> None:
    w = torch.zeros(2, 3, dtype=D64)
    delta = torch.ones(4, 2, 3, dtype=D64)
    out = Euclidean().retract(w, delta, torch.tensor([0.5, 2.0], dtype=D64))  # lam [B]
    torch.testing.assert_close(out[:, 0], torch.full((4, 3), 0.5, dtype=D64))
    torch.testing.assert_close(out[:, 1], torch.full((4, 3), 2.0, dtype=D64))


def test_learnable_lam_is_in_the_target_dtype() -> None:
    w = torch.randn(3, 2, dtype=D64)
    result = StarConvexLoss(learn_lam=True, lam=0.3)(lambda x: (x - w).pow(2).sum(-1), w, gen())
    assert result.lam.dtype == D64 and result.lam.item() == pytest.approx(0.3)
