"""StarConvexLoss: the hinge maths, the batched-call contract, gradients and argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlc import Euclidean, Rotation, StarConvexLoss, violation_rate

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quadratic(center: torch.Tensor):
    """h(w) = |w - c|^2 per sample: exactly 2-strongly star-convex about c."""
    return lambda w: (w - center).pow(2).sum(-1)


def cosine_bowl(center: torch.Tensor, a: float = 4.0):
    """h(w) = 1 - cos(a |w - c|): star-convex only for a |w - c| well below pi."""
    return lambda w: 1 - torch.cos(a * (w - center).norm(dim=-1))


def target(batch: int = 6, dim: int = 3, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(batch, dim, generator=gen(1), dtype=dtype)


@pytest.mark.parametrize("mu", [0.0, 1.0, 2.0 - 1e-6])
def test_quadratic_has_no_hinge_up_to_its_modulus(mu: float) -> None:
    w = target()
    loss = StarConvexLoss(Euclidean(scale=0.5), samples=8, mu=mu, lam=0.3)
    result = loss(quadratic(w), w, generator=gen())
    assert result.hinge.item() == 0.0
    assert all((t == 0).all() for t in result.terms.values())


def test_quadratic_violates_a_larger_modulus() -> None:
    w = target()
    result = StarConvexLoss(Euclidean(scale=0.5), samples=8, mu=2.5)(quadratic(w), w,
                                                                     generator=gen())
    assert (result.terms["t2"] > 0).all()
    assert (result.terms["t3"] > 0).all()
    assert result.hinge > 0


def test_non_star_convex_h_has_positive_hinge() -> None:
    w = target()
    result = StarConvexLoss(Euclidean(scale=1.0), samples=8)(cosine_bowl(w), w, generator=gen())
    assert result.hinge > 0
    assert result.total == pytest.approx(result.h_star_mean.item() + result.hinge.item())


def test_training_a_parametric_h_lowers_hinge_and_violations() -> None:
    w = target(batch=16, dim=2)
    theta = nn.Parameter(torch.tensor([0.1, 1.0], dtype=torch.float64))  # quadratic, cosine bump

    def h(x: torch.Tensor) -> torch.Tensor:
        u = (x - w).norm(dim=-1)
        return theta[0] * u**2 + theta[1] * (1 - torch.cos(4.0 * u))

    space = Euclidean(scale=1.0)
    loss = StarConvexLoss(space, samples=8)

    def measure() -> tuple[float, float]:
        hinge = loss(h, w, generator=gen(5)).hinge.item()
        return hinge, violation_rate(h, w, space, rays=16, points=8, generator=gen(6)).item()

    hinge0, rate0 = measure()
    assert hinge0 > 0 and rate0 > 0
    opt = torch.optim.Adam([theta], lr=0.05)
    for step in range(10):
        opt.zero_grad()
        loss(h, w, generator=gen(100 + step)).total.backward()
        opt.step()
    hinge1, rate1 = measure()
    assert hinge1 < hinge0 and rate1 < rate0


@pytest.mark.parametrize("aggregate", ["sum", "max"])
def test_batched_result_equals_a_per_sample_loop(aggregate: str) -> None:
    w = target(batch=4, dim=3)
    shift = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)

    def h_one(x: torch.Tensor) -> torch.Tensor:  # one target [D] -> scalar
        return (x - w[0] - shift).pow(2).sum() + torch.sin(5 * x).sum()

    def h(x: torch.Tensor) -> torch.Tensor:  # the same loss, batched [K, B, D] -> [K, B]
        return (x - w[0] - shift).pow(2).sum(-1) + torch.sin(5 * x).sum(-1)

    lam, mu, weight, samples = 0.3, 0.7, 1.5, 5
    loss = StarConvexLoss(Euclidean(scale=0.4), samples=samples, lam=lam, mu=mu, weight=weight,
                          aggregate=aggregate)
    result = loss(h, w, generator=gen())
    assert result.hinge > 0

    per_example, terms = [], {k: torch.zeros(samples, 4, dtype=torch.float64) for k in "123"}
    for b in range(4):
        h_star = h_one(w[b])
        values = []
        for s in range(samples):
            d = result.delta[s, b]
            h_tilde, h_lam, n2 = h_one(w[b] + d), h_one(w[b] + lam * d), d.pow(2).sum()
            t1 = max(h_star - h_lam, 0.0)
            t2 = max(h_star - h_tilde + mu / 2 * n2, 0.0)
            t3 = max(h_lam - (1 - lam) * h_star - lam * h_tilde + mu / 2 * lam * (1 - lam) * n2,
                     0.0)
            for key, value in zip("123", (t1, t2, t3)):
                terms[key][s, b] = value
            values.append(t1 + t2 + t3)
        per_example.append(sum(values) if aggregate == "sum" else max(values))
    hinge = sum(per_example) / 4
    base = sum(h_one(w[b]) for b in range(4)) / 4
    for key in "123":
        torch.testing.assert_close(result.terms["t" + key], terms[key])
    torch.testing.assert_close(result.hinge, torch.as_tensor(hinge))
    torch.testing.assert_close(result.total, base + weight * hinge)


def test_h_is_called_once_per_forward_and_chunks_split_it() -> None:
    w = target()
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return quadratic(w)(x)

    full = StarConvexLoss(samples=4)(h, w, generator=gen())
    assert calls == [9]
    calls.clear()
    chunked = StarConvexLoss(samples=4, chunk_size=4)(h, w, generator=gen())
    assert calls == [4, 4, 1]
    torch.testing.assert_close(full.total, chunked.total)


def test_large_stacked_targets_are_chunked_automatically() -> None:
    w = torch.zeros(8192, 10)  # 9 x 320 KiB of stacked targets > AUTO_CHUNK_BYTES
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return quadratic(w)(x)

    StarConvexLoss(samples=4)(h, w, generator=gen())
    assert calls == [6, 3]
    calls.clear()
    StarConvexLoss(samples=4, chunk_size=9)(h, w, generator=gen())
    assert calls == [9]


def _net_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    return net, torch.randn(5, 4), torch.randn(5, 3)


def test_gradients_reach_every_parameter_through_the_hinge() -> None:
    net, x, y = _net_and_data()
    pred = net(x)
    result = StarConvexLoss(Euclidean(scale=1.0), samples=4)(
        lambda w: (pred[None] - w).pow(2).sum(-1), y, generator=gen())
    assert result.hinge > 0
    result.hinge.backward()  # the hinge alone, not the base loss
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_learnable_lam_stays_inside_the_unit_interval() -> None:
    w = target()
    loss = StarConvexLoss(Euclidean(scale=1.0), learn_lam=True, lam=0.3)
    assert loss.lam.item() == pytest.approx(0.3)
    result = loss(cosine_bowl(w), w, generator=gen())
    result.total.backward()
    assert loss.lam_logit.grad is not None and loss.lam_logit.grad != 0
    opt = torch.optim.SGD(loss.parameters(), lr=1e4)
    for sign in (-1.0, 1.0):
        for _ in range(5):
            opt.zero_grad()
            (sign * loss.lam).backward()
            opt.step()
        assert 0 < loss.lam.item() < 1
        assert 0 < loss(cosine_bowl(w), w).lam.item() < 1


def test_learn_mu_warns_and_is_positive() -> None:
    with pytest.warns(UserWarning, match="mu -> 0"):
        loss = StarConvexLoss(mu=1.0, learn_mu=True)
    assert loss.mu.item() == pytest.approx(1.0)
    assert [n for n, _ in loss.named_parameters()] == ["mu_raw"]


@pytest.mark.parametrize("kwargs, match", [
    ({"samples": 0}, "samples must be an int >= 1, got 0"),
    ({"lam": 0.0}, r"lam must be in \(0, 1\), got 0.0"),
    ({"lam": 1.5}, r"lam must be in \(0, 1\), got 1.5"),
    ({"mu": -1.0}, "mu must be >= 0"),
    ({"aggregate": "mean"}, "aggregate must be 'sum' or 'max', got 'mean'"),
    ({"terms": ("t4",)}, "terms must be a non-empty subset"),
    ({"terms": ()}, "terms must be a non-empty subset"),
    ({"perturbation": "pgd"}, "perturbation must be 'random' or 'adversarial'"),
    ({"adversarial_steps": 0}, "adversarial_steps must be an int >= 1"),
    ({"learn_mu": True, "mu": 0.0}, "needs mu > 0"),
])
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        StarConvexLoss(**kwargs)


def test_bad_target_or_h_raises() -> None:
    w = target()
    with pytest.raises(ValueError, match=r"expects a target of shape \[B, 3, 3\], got \[6, 3\]"):
        StarConvexLoss(Rotation())(quadratic(w), w)
    with pytest.raises(ValueError, match=r"h must return \[K, B\] = \[9, 6\] .*got \[9\]"):
        StarConvexLoss(samples=4)(lambda x: quadratic(w)(x).sum(-1), w)


class FixedDelta(Euclidean):
    """Euclidean geometry whose ``sample`` returns a given ``delta [S, B, D]`` (cast to the
    target's dtype), so two dtypes or two batchings see the same perturbations."""

    def __init__(self, delta: torch.Tensor, scale: float = 1.0) -> None:
        super().__init__(scale=scale)
        self.delta = delta

    def sample(self, target, n, generator=None):
        return self.delta[:n].to(target)


def test_float32_agrees_with_float64() -> None:
    w64 = target()
    delta = Euclidean(scale=1.0).sample(w64, 3, gen())
    loss = StarConvexLoss(FixedDelta(delta), samples=3, mu=0.5)
    r64 = loss(cosine_bowl(w64), w64)
    r32 = loss(cosine_bowl(w64.float()), w64.float())
    assert r32.total.dtype == torch.float32 and r32.delta.dtype == torch.float32
    assert r64.total.dtype == torch.float64 and r64.delta.dtype == torch.float64
    assert r64.hinge > 0.1  # a case with active hinges, not 0 == 0
    # float32 has 24 bits (~6e-8 relative); h and the margins lose a few digits: 1e-5
    torch.testing.assert_close(r32.total.double(), r64.total, rtol=1e-5, atol=1e-6)
    for name in r64.terms:
        torch.testing.assert_close(r32.terms[name].double(), r64.terms[name], rtol=1e-5,
                                   atol=1e-5)


def test_adversarial_hinge_is_at_least_the_random_one_from_the_same_start() -> None:
    w = target(batch=8, dim=2)
    center = nn.Parameter(w.clone())
    h = cosine_bowl(center, a=3.0)
    common = {"space": Euclidean(scale=0.8), "samples": 3, "aggregate": "max"}
    random = StarConvexLoss(**common)(h, w, generator=gen(3))
    adversarial = StarConvexLoss(perturbation="adversarial", adversarial_steps=4, **common)(
        h, w, generator=gen(3))
    assert center.grad is None  # the ascent takes gradients w.r.t. delta only
    per_random = sum(random.terms.values())
    per_adv = sum(adversarial.terms.values())
    assert (per_adv >= per_random - 1e-12).all()
    assert adversarial.hinge > random.hinge  # random sampling finds no violation here: 0
    assert (adversarial.delta.abs() <= 0.8 + 1e-12).all()  # projected into the box
    adversarial.total.backward()
    assert center.grad is not None and center.grad.abs().sum() > 0


def test_aggregation_is_per_example() -> None:
    w = target(batch=8, dim=2)
    result = StarConvexLoss(Euclidean(scale=1.0), samples=4, aggregate="max")(
        cosine_bowl(w), w, generator=gen())
    per = sum(result.terms.values())
    torch.testing.assert_close(result.hinge, per.amax(0).mean())
    assert not math.isclose(result.hinge.item(), per.mean(1).max().item())


@pytest.mark.gpu
@cuda
def test_runs_on_cuda() -> None:
    w = target(dtype=torch.float32).cuda()
    center = nn.Parameter(w.clone())
    loss = StarConvexLoss(Euclidean(scale=1.0), learn_lam=True)
    result = loss(cosine_bowl(center), w, generator=gen())  # CPU generator, CUDA target
    result.total.backward()
    assert result.total.device.type == "cuda" and center.grad is not None
    rotations = torch.eye(3, device="cuda").expand(4, 3, 3)
    rot = StarConvexLoss(Rotation(), perturbation="adversarial")(
        lambda r: (r - rotations).pow(2).sum((-1, -2)), rotations)
    assert torch.isfinite(rot.total)


def test_adversarial_search_survives_a_flat_hinge() -> None:
    """A zero gradient w.r.t. delta (flat h, e.g. a clamped border) means no ascent step; it once
    gave 0 * (radius / tiny) = NaN perturbations, which crashed grid_sample in a worker."""
    offset = torch.zeros((), requires_grad=True)

    def flat(w: torch.Tensor) -> torch.Tensor:
        assert torch.isfinite(w).all(), "h was evaluated at a non-finite target"
        return (w * 0).sum(-1) + offset

    target = torch.randn(6, 3)
    loss = StarConvexLoss(Euclidean(scale=16.0), samples=3, mu=0.0, perturbation="adversarial")
    result = loss(flat, target, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(result.delta).all() and torch.isfinite(result.total)
    assert (result.delta.abs() <= 16.0).all()
