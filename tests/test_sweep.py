"""Sweep files: search spaces, equal budgets, samplers that give shared axes the same points."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.protocol.sweep import (
    Sweep,
    axes,
    binding_text,
    check_budgets,
    check_resolution,
    load_sweep,
    sample_params,
    scale_value,
    tpe_params,
)
from bench.protocol.verdicts import WEIGHT_AXES, reaches_plain_limit
from bench.runner.config import ConfigError

LR = "bench.run.Experiment.lr"
WEIGHT = "bench.objectives.DLC.weight"
LOG_LR = {"min": 1e-4, "max": 1e-1, "scaling": "log"}
MINIMAL = ("bench.sweep.Sweep:\n"  # a sweep file whose line 7 is the first one a test appends
           "    spaces = {'plain': {'bench.run.Experiment.lr': {'feasible_points': [0.1, 0.2]}}}\n"
           "    trials = 2\n    metric = 'distance'\n    direction = 'min'\n"
           "    final_seeds = [100]\n")


def write_sweep(folder: Path, body: str) -> Path:
    path = folder / "sweep.gin"
    path.write_text(body)
    return path


def sweep_of(spaces: dict, trials=4, sampler="halton") -> Sweep:
    return Sweep(spaces=spaces, trials=trials, sampler=sampler, metric="distance",
                 direction="min", final_seeds=[100], source="test.gin")


def test_shipped_sweeps_load_and_follow_the_protocol() -> None:
    root = Path(__file__).resolve().parent.parent / "gin" / "sweeps"
    paths = sorted(root.glob("*.gin"))
    assert {p.name for p in paths} >= {"cpu.gin", "smoke.gin"}
    for path in paths:
        sweep = load_sweep(path)
        check_budgets(sweep, list(sweep.spaces))  # equal compute, to within one trial
        check_resolution(sweep, sample_params(sweep, list(sweep.spaces)))  # nested lr
        assert len(sweep.tuning_seeds) >= 2, path.name
        for objective, space in sweep.spaces.items():
            if objective in ("plain", "unrolled"):  # baselines: no added term to switch off
                continue
            # the search space contains the baseline: a weight axis down to the plain limit
            weights = [spec for key, spec in space.items() if key in WEIGHT_AXES]
            assert weights and all(reaches_plain_limit(w) for w in weights), (path.name,
                                                                              objective)


def test_search_space_rule_catches_a_range_above_the_plain_limit() -> None:
    assert not reaches_plain_limit({"min": 0.1, "max": 10.0, "scaling": "log"})
    assert reaches_plain_limit({"min": 1e-4, "max": 1.0, "scaling": "log"})
    assert not reaches_plain_limit({"feasible_points": [0.3, 3.0]})


def test_nested_design_crosses_every_weight_with_plains_learning_rates() -> None:
    weight = {"min": 1e-4, "max": 1.0, "scaling": "log"}
    sweep = sweep_of({"plain": {LR: LOG_LR}, "dlc": {LR: LOG_LR, WEIGHT: weight}})
    sweep.design, sweep.resolution = "nested", {LR: 4, WEIGHT: 3}
    params = sample_params(sweep, ["plain", "dlc"])
    plain = [p[LR] for p in params["plain"]]
    assert plain == [1e-4, 1e-3, 1e-2, 1e-1]  # both ends included, log spaced
    assert sweep.budget("plain") == 4 and sweep.budget("dlc") == 12
    assert [p[WEIGHT] for p in params["dlc"]] == [1e-4] * 4 + [1e-2] * 4 + [1.0] * 4
    assert [p[LR] for p in params["dlc"]] == plain * 3  # the shared axis varies fastest
    check_resolution(sweep, params)


def test_quasi_random_weight_axis_fails_the_resolution_rule() -> None:
    sweep = sweep_of({"plain": {LR: LOG_LR},
                      "dlc": {LR: LOG_LR, WEIGHT: {"feasible_points": [1e-4, 1.0]}}})
    with pytest.raises(ConfigError, match=r"gets [0-3] of the 4 points 'plain' gets"):
        check_resolution(sweep, sample_params(sweep, ["plain", "dlc"]))


def test_equal_compute_counts_full_budget_equivalents() -> None:
    sweep = sweep_of({"plain": {LR: LOG_LR}, "dlc": {LR: LOG_LR}}, trials={"plain": 8, "dlc": 24})
    sweep.rungs, sweep.reduction_factor = [0.13], {"plain": 2, "dlc": 12}
    # plain: 8 x 0.13 + 4 full; dlc: 24 x 0.13 + 2 full (restarts counted)
    assert sweep.compute("plain") == pytest.approx(5.04)
    assert sweep.compute("dlc") == pytest.approx(5.12)
    check_budgets(sweep, ["plain", "dlc"])
    sweep.reduction_factor = {"plain": 2, "dlc": 6}  # dlc: 3.12 + 4 = 7.12
    with pytest.raises(ConfigError, match="unequal tuning budgets"):
        check_budgets(sweep, ["plain", "dlc"])


def test_rungs_need_a_batch_sampler_and_reduction_factors(tmp_path: Path) -> None:
    body = MINIMAL
    with pytest.raises(ConfigError, match="line 7: rungs .*need a batch sampler"):
        load_sweep(write_sweep(tmp_path, body + "    rungs = [0.5]\n    sampler = 'tpe'\n"))
    with pytest.raises(ConfigError, match="line 7: rungs \\[0.5, 0.4\\]: expected increasing"):
        load_sweep(write_sweep(tmp_path, body + "    rungs = [0.5, 0.4]\n"))
    with pytest.raises(ConfigError, match="reduction_factor of 'plain' is 1"):
        load_sweep(write_sweep(tmp_path, body + "    rungs = [0.5]\n    reduction_factor = 1\n"))
    with pytest.raises(ConfigError, match="line 7: tuning_seeds \\[0, 0\\]: expected at least 2"):
        load_sweep(write_sweep(tmp_path, body + "    tuning_seeds = [0, 0]\n"))


def test_scale_value_by_hand() -> None:
    assert scale_value(LOG_LR, 0.0) == pytest.approx(1e-4)
    assert scale_value(LOG_LR, 0.5) == pytest.approx(math.sqrt(1e-4 * 1e-1), rel=1e-5)
    assert scale_value({"min": 2.0, "max": 4.0, "scaling": "linear"}, 0.25) == 2.5
    points = {"feasible_points": ["a", "b", "c"]}
    assert [scale_value(points, u) for u in (0.0, 0.34, 0.99)] == ["a", "b", "c"]


@pytest.mark.parametrize("sampler", ["halton", "sobol", "random"])
def test_shared_learning_rate_gets_the_same_points(sampler: str) -> None:
    sweep = sweep_of({"plain": {LR: LOG_LR},
                      "dlc": {LR: LOG_LR, WEIGHT: {"min": 0.1, "max": 10.0, "scaling": "log"}}},
                     sampler=sampler)
    params = sample_params(sweep, ["plain", "dlc"])
    plain = [p[LR] for p in params["plain"]]
    assert plain == [p[LR] for p in params["dlc"]]
    assert len(set(plain)) == 4 and all(1e-4 <= v <= 1e-1 for v in plain)
    # a further DLC-only axis does not move the shared axis to another dimension
    more = sweep_of({"plain": {LR: LOG_LR},
                     "dlc": {LR: LOG_LR, WEIGHT: {"min": 0.1, "max": 10.0, "scaling": "log"},
                             "bench.objectives.DLC.samples": {"feasible_points": [2, 4, 8]}}},
                    sampler=sampler)
    assert [p[LR] for p in sample_params(more, ["plain", "dlc"])["plain"]] == plain


def test_shared_axes_come_first() -> None:
    sweep = sweep_of({"plain": {"z.lr": LOG_LR}, "dlc": {"z.lr": LOG_LR, "a.weight": LOG_LR}})
    assert axes(sweep, ["plain", "dlc"]) == ["z.lr", "a.weight"]


def test_halton_points_are_spread_not_repeated() -> None:
    sweep = sweep_of({"plain": {LR: {"min": 0.0, "max": 1.0, "scaling": "linear"}}}, trials=8)
    values = sorted(p[LR] for p in sample_params(sweep, ["plain"])["plain"])
    # a low-discrepancy sequence puts exactly one of 8 points in each eighth of [0, 1)
    assert [int(v * 8) for v in values] == list(range(8))


def test_equal_budgets_are_enforced() -> None:
    sweep = sweep_of({"plain": {LR: LOG_LR}, "dlc": {LR: LOG_LR}}, trials={"plain": 4, "dlc": 2})
    with pytest.raises(ConfigError, match="unequal tuning budgets"):
        check_budgets(sweep, ["plain", "dlc"])
    check_budgets(sweep, ["plain", "dlc"], allow_unequal=True)
    with pytest.raises(ConfigError, match="no search space for objective"):
        check_budgets(sweep, ["plain", "margin"])


def test_bad_search_space_names_file_and_line(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, (
        "bench.sweep.Sweep:\n"
        "    spaces = {'plain': {\n"
        "        'bench.run.Experiment.lr': {'min': 0.0, 'max': 1e-2, 'scaling': 'log'}}}\n"
        "    trials = 2\n    metric = 'distance'\n    direction = 'min'\n"
        "    final_seeds = [100]\n"))
    with pytest.raises(ConfigError, match=r"sweep.gin, line 3: .*log scaling needs min > 0"):
        load_sweep(path)
    path.write_text(path.read_text().replace("'scaling': 'log'", "'scale': 'log'")
                    .replace("0.0", "1e-4"))
    with pytest.raises(ConfigError, match=r"line 3: .*expected keys min, max, scaling"):
        load_sweep(path)


def test_bad_sampler_and_budget_list(tmp_path: Path) -> None:
    body = MINIMAL
    with pytest.raises(ConfigError, match="line 7: sampler 'grid'"):
        load_sweep(write_sweep(tmp_path, body + "    sampler = 'grid'\n"))
    with pytest.raises(ConfigError, match="budget 2: expected an integer from 1 to 1"):
        load_sweep(write_sweep(tmp_path, body + "    budgets = [2]\n"))


def test_binding_text_keeps_references() -> None:
    assert binding_text(LR, 0.01) == f"{LR} = 0.01"
    assert binding_text("x.opt", "@torch.optim.SGD") == "x.opt = @torch.optim.SGD"
    assert binding_text("x.name", "val") == "x.name = 'val'"


def test_tpe_is_deterministic_and_inside_the_space() -> None:
    sweep = sweep_of({"dlc": {LR: LOG_LR, WEIGHT: {"feasible_points": [0.5, 1.0]}}},
                     sampler="tpe")
    history = [({LR: 1e-3, WEIGHT: 1.0}, 2.0), ({LR: 1e-2, WEIGHT: 0.5}, 1.0)]
    first = tpe_params(sweep, "dlc", history, "min", trial=2)
    assert first == tpe_params(sweep, "dlc", history, "min", trial=2)
    assert 1e-4 <= first[LR] <= 1e-1 and first[WEIGHT] in (0.5, 1.0)
