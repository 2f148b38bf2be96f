"""The README's generated tables and numbers of `results/cpu` (`bench.report.readme_results`),
on a small results folder whose answers are known."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.report import readme_results as R

DLC = "bench.objectives.DLC.weight"


def _folder(repo: Path) -> None:
    root = repo / "results" / R.CURRENT
    for sub in ("report", "selected", "final", "trials/t000"):
        (root / sub).mkdir(parents=True)
    pd.DataFrame([dict(task="homography_synthetic_thermal", model="deeplk", objective="dlc",
                       metric="mace", direction="min", mean=9.0, std=1.0, runs=10, base_mean=8.0,
                       base_std=0.5, base_runs=10, diff=1.0, lo=0.5, hi=1.5, p=0.002,
                       p_holm=float("nan"), verdict="floor", **{"class": "floor"},
                       params=json.dumps({DLC: 0.01, R.LR: 1e-3}))]
                 ).to_csv(root / "report" / "comparisons.csv", index=False)
    selected = [("deeplk", "plain", {R.LR: 1e-3}, 8), ("deeplk", "dlc", {R.LR: 1e-3, DLC: 0.01}, 24),
                ("rawlk", "plain", {R.LR: 3e-4}, 8)]
    pd.DataFrame([dict(task="homography_synthetic_thermal", model=m, objective=o, trial=0,
                       score=5.0, trials=n, params=json.dumps(p)) for m, o, p, n in selected]
                 ).to_csv(root / "selected" / "selected.csv", index=False)
    pd.DataFrame([dict(task="homography_synthetic_thermal", model=m, objective=o, winner=0,
                       tuning_seeds=2, stability=0.5) for m, o, _, _ in selected]
                 ).to_csv(root / "report" / "stability.csv", index=False)
    pd.DataFrame([dict(task="homography_synthetic_thermal", model=m, objective=o, points=n,
                       reached_full=2, full_budget_equiv=5.0, seeds=2, planned_equiv=5.0,
                       wall_s=600.0) for m, o, _, n in selected]
                 ).to_csv(root / "report" / "compute.csv", index=False)
    start = pd.Timestamp("2026-12-06T08:00:00+00:00")
    runs = lambda ids, ends, walls: pd.DataFrame(  # noqa: E731
        dict(run_id=ids, status="done", git_sha="abcdef0123", wall_time_s=walls,
             finished=[(start + pd.Timedelta(seconds=e)).isoformat() for e in ends]))
    runs(["a", "b"], [10, 30], [10.0, 5.0]).to_parquet(root / "trials" / "t000" / "runs.parquet")
    runs(["c"], [120], [60.0]).to_parquet(root / "final" / "runs.parquet")


def test_the_readme_reads_results_cpu_as_its_report_wrote_it(tmp_path: Path) -> None:
    _folder(tmp_path)
    table = R.comparison_block(tmp_path, R.CURRENT)
    assert "| class |" in table and "| floor | 9.0 ± 1.0 | 8.00 ± 0.50 |" in table
    assert "| — | floor |" in table  # no Holm p outside the valid rows
    selected = R.selected_block(tmp_path)
    assert "| dlc | 1.0e-3 | β 0.01 | 5 | 24 | 0.50 |" in selected
    assert "| rawlk | plain | — (nothing to train) |" in selected
    compute = R.compute_block(tmp_path)  # rawlk is the floor, not a problem: plain has 1
    assert "| plain | 1 | 8 | 2 | 5.0 | 5.0 | 10 |" in compute
    assert R.NUMBERS["now.wall_min"](tmp_path) == "2"  # 08:00:00 (a starts) to 08:02:00 (c ends)
    assert R._busy(tmp_path) == 75.0  # a 0-10 s, b 25-30 s, c 60-120 s: 10 + 5 + 60
    assert R.NUMBERS["now.cells"](tmp_path) == "3"
    assert R.NUMBERS["now.commits"](tmp_path) == "abcdef0"
    assert R.NUMBERS["now.classes"](tmp_path) == "1 floor"
    row = "now.row.homography_synthetic_thermal.deeplk.dlc."
    assert R.row_number(tmp_path, row + "diff") == "+1.0 [+0.5, +1.5]"
    assert R.row_number(tmp_path, row + "beta") == "0.01"
    with pytest.raises(KeyError, match="field in"):
        R.row_number(tmp_path, row + "median")


def test_each_row_is_shown_beside_the_previous_comparison(tmp_path: Path) -> None:
    _folder(tmp_path)
    previous = tmp_path / "results" / R.PREVIOUS / "report"
    previous.mkdir(parents=True)
    row = dict(task="homography_synthetic_thermal", model="deeplk", metric="mace", direction="min",
               std=1.0, runs=10, base_mean=13.4, base_std=2.0, base_runs=10, verdict="no evidence")
    pd.DataFrame([dict(row, objective="dlc", mean=15.2),
                  dict(row, objective="dlc_prise", mean=13.7)]).to_csv(
        previous / "comparisons.csv", index=False)
    table = R.changes_block(tmp_path, R.PREVIOUS)
    assert "| deeplk | dlc | 15.2 vs 13.4 | no evidence | 9.0 vs 8.00 | floor |" in table
    assert "| deeplk | dlc_prise | 13.7 vs 13.4 | no evidence | — | — |" in table

