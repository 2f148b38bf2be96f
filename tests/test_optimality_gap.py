"""The optimality gap means one thing: h(ŵ) above the best h known for the example, never negative,
reported beside the share of examples where w* is not the minimiser of h."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

import dlc
from bench.metrics import Distance, OptimalityGap, SpuriousMinimum, Trace, with_companions
from bench.runner.evaluate import GAP_SEARCH_DIRECTIONS, search_minimum
from bench.schema import Direction
from tests.conftest import bench_cli, run_records, write_matrix


def _trace() -> Trace:
    # 2 examples, iterations t = 0, 1. Example 0: the solver reaches 0.5 < h(w*) = 1 (a spurious
    # minimum); example 1: the search finds 1.5 < h(w*) = 2, the solver never gets below 2.
    return Trace(distance=torch.zeros(2, 2, dtype=torch.float64),
                 h=torch.tensor([[3.0, 2.0], [0.5, 2.5]], dtype=torch.float64),
                 h_star=torch.tensor([1.0, 2.0], dtype=torch.float64),
                 h_search=torch.tensor([0.8, 1.5], dtype=torch.float64))


def test_gap_to_the_best_known_value_by_hand() -> None:
    trace = _trace()
    assert trace.h_best.tolist() == [0.5, 1.5]
    # t=0: (3 - 0.5 + 2 - 1.5) / 2 = 1.5; t=1: (0 + 2.5 - 1.5) / 2 = 0.5
    assert OptimalityGap()(trace).tolist() == pytest.approx([1.5, 0.5])
    assert SpuriousMinimum()(trace).tolist() == [100.0, 100.0]
    # the old signed definition h(w_t) - h(w*) reads 0 at t=1 although example 0 sits 0.5
    # below h(w*) in a spurious minimum and example 1 0.5 above it
    assert ((trace.h - trace.h_star[None]).mean(1)[1]).item() == pytest.approx(0.0)


def test_gap_is_never_negative_and_zero_when_w_star_is_the_minimiser() -> None:
    trace = Trace(distance=torch.zeros(3, 4, dtype=torch.float64),
                  h=torch.tensor([[4.0, 3, 2, 1], [2, 2, 2, 1], [1, 1, 1, 1]],
                                 dtype=torch.float64),
                  h_star=torch.ones(4, dtype=torch.float64))
    gap = OptimalityGap()(trace)
    assert gap.tolist() == pytest.approx([1.5, 0.75, 0.0]) and (gap >= 0).all()
    assert SpuriousMinimum()(trace).tolist() == [0.0, 0.0, 0.0]  # within tolerance: no spurious
    assert OptimalityGap.direction == Direction.NONE  # scales differ between objectives
    assert SpuriousMinimum.direction == Direction.MIN


def test_spurious_minimum_companion_is_added_once() -> None:
    names = [m.name for m in with_companions([Distance(), OptimalityGap()])]
    assert names == ["distance", "optimality_gap", "spurious_minimum"]
    assert [m.name for m in with_companions([Distance()])] == ["distance"]
    twice = with_companions(with_companions([OptimalityGap()]))
    assert [m.name for m in twice] == ["optimality_gap", "spurious_minimum"]


class _ShiftedBowl:
    """h(w) = |w - c|² with its minimum c = w* + 0.3 (per entry), inside the search radius."""

    space = dlc.Euclidean(scale=1.0)

    @staticmethod
    def h(outputs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (w - outputs[None]).pow(2).sum(-1)


def test_search_around_w_star_finds_lower_values_reproducibly() -> None:
    target = torch.zeros(16, 2)
    centre = target + 0.3
    task = _ShiftedBowl()
    found = search_minimum(task, centre, target, torch.Generator().manual_seed(1))
    again = search_minimum(task, centre, target, torch.Generator().manual_seed(1))
    h_star = task.h(centre, target[None])[0]  # 0.18 per example
    assert torch.equal(found, again) and found.shape == (16,)
    assert (found < h_star).float().mean() > 0.9  # 8 directions x 4 steps: almost always lower
    assert (found >= 0).all()
    assert GAP_SEARCH_DIRECTIONS == 8


def test_a_run_records_the_gap_with_its_companion(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    record = next(iter(run_records(results).values()))
    assert record["metric_directions"]["optimality_gap"] == "none"
    assert record["metric_directions"]["spurious_minimum"] == "min"
    frame = pd.read_parquet(results / "runs" / record["run_id"] / "metrics.parquet")
    gap = frame[(frame.phase == "test_iter") & (frame.metric == "optimality_gap")]["value"]
    assert len(gap) == 5 and (gap >= 0).all()
    share = frame[(frame.phase == "test") & (frame.metric == "spurious_minimum")]["value"]
    assert len(share) == 1 and 0.0 <= share.iloc[0] <= 100.0
