"""dlc.functional: each function against values worked out by hand."""

from __future__ import annotations

import pytest
import torch

from dlc import Euclidean
from dlc.functional import (
    TERMS,
    aggregate_hinge,
    ascent_objective,
    hinge_terms,
    loss_at,
    margins,
    star_convex_points,
)

D64 = torch.float64


def t(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=D64)


def test_margins_by_hand() -> None:
    # one example, two samples; lam = 0.25 and mu = 0.5 so that lam, 1 - lam and mu/2 differ
    h_star = t(1.0)
    h_tilde, h_lam, n2 = t([3.0], [0.5]), t([1.5], [2.0]), t([4.0], [1.0])
    lam, mu = torch.tensor(0.25, dtype=D64), torch.tensor(0.5, dtype=D64)
    m = margins(h_star, h_tilde, h_lam, n2, lam, mu)
    assert list(m) == list(TERMS)
    # m1 = h* - h_l:                 1 - 1.5 = -0.5;             1 - 2 = -1
    # m2 = h* - h~ + mu/2 n2:        1 - 3 + 0.25 * 4 = -1;      1 - 0.5 + 0.25 * 1 = 0.75
    # m3 = h_l - 0.75 h* - 0.25 h~ + 0.25 * 0.25 * 0.75 * n2 (mu/2 lam (1 - lam) = 0.046875):
    #      1.5 - 0.75 - 0.75 + 0.1875 = 0.1875;  2 - 0.75 - 0.125 + 0.046875 = 1.171875
    torch.testing.assert_close(m["t1"], t([-0.5], [-1.0]))
    torch.testing.assert_close(m["t2"], t([-1.0], [0.75]))
    torch.testing.assert_close(m["t3"], t([0.1875], [1.171875]))
    only = margins(h_star, h_tilde, h_lam, n2, lam, mu, terms=("t3", "t1"))
    assert list(only) == ["t1", "t3"]


def test_hinge_terms_and_aggregation_by_hand() -> None:
    margin = {"t1": t([1.0, -2.0], [2.0, 3.0]), "t2": t([0.5, 0.0], [-1.0, 1.0])}  # [S=2, B=2]
    terms = hinge_terms(margin)
    torch.testing.assert_close(terms["t1"], t([1.0, 0.0], [2.0, 3.0]))
    torch.testing.assert_close(terms["t2"], t([0.5, 0.0], [0.0, 1.0]))
    # per (sample, example): [[1.5, 0], [2, 4]]; sum over samples [3.5, 4] -> mean 3.75;
    # max over samples [2, 4] -> mean 3
    assert aggregate_hinge(terms, "sum").item() == pytest.approx(3.75)
    assert aggregate_hinge(terms, "max").item() == pytest.approx(3.0)


def test_ascent_objective_by_hand() -> None:
    margin = {"t1": t([-1.0, 0.5, -3.0]), "t2": t([-0.2, 0.25, -4.0])}  # [S=1, B=3]
    # example 0: no active hinge -> the largest margin -0.2; example 1: hinge 0.5 + 0.25;
    # example 2: no active hinge -> -3
    torch.testing.assert_close(ascent_objective(margin), t([-0.2, 0.75, -3.0]))


def test_loss_at_chunks_and_checks_the_shape() -> None:
    points = torch.arange(10, dtype=D64).reshape(5, 1, 2)  # [K=5, B=1, 2]
    calls: list[int] = []

    def h(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return x.sum(-1)

    expected = t([1.0], [5.0], [9.0], [13.0], [17.0])
    torch.testing.assert_close(loss_at(h, points), expected)
    torch.testing.assert_close(loss_at(h, points, chunk_size=2), expected)
    torch.testing.assert_close(loss_at(h, points, chunk_size=5), expected)
    torch.testing.assert_close(loss_at(h, points, chunk_size=3), expected)  # two chunks
    assert calls == [5, 2, 2, 1, 5, 3, 2]
    with pytest.raises(ValueError, match=r"h must return \[K, B\] = \[5, 1\] .*got \[5\]"):
        loss_at(lambda x: x.sum((-1, -2)), points)
    with pytest.raises(ValueError, match=r"got float"):
        loss_at(lambda x: 1.0, points)


def test_star_convex_points_by_hand() -> None:
    target = t([1.0, 2.0])
    delta = t([[0.5, -1.0]], [[2.0, 4.0]])  # [S=2, B=1, 2]
    points = star_convex_points(Euclidean(), target, delta, 0.25)
    expected = t([[1.0, 2.0]],                          # w*
                 [[1.5, 1.0]], [[3.0, 6.0]],            # w* + delta
                 [[1.125, 1.75]], [[1.5, 3.0]])         # w* + delta / 4
    torch.testing.assert_close(points, expected)
