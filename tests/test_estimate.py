"""`bench estimate MATRIX`: cells still to run, seconds per cell (measured or calibrated), totals,
and cells whose local data are absent, listed up front."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.protocol.estimate import calibrate, estimate_cells
from bench.runner.matrix import expand_cells, load_matrix
from tests.conftest import bench_cli, write_matrix

pytestmark = pytest.mark.slow  # calibrates and runs cells (seconds); CI runs it in its slow step


def test_calibration_counts_the_budget_steps_and_times_them(tmp_path: Path) -> None:
    (cell,) = expand_cells(load_matrix(write_matrix(tmp_path, ["dlc"]))[0], tmp_path / "r")
    measured = calibrate(cell, "cpu", steps=2)
    # TINY: 1 epoch, batch 32, 64 generated examples of which the validation carve keeps some
    assert 1 <= measured.steps <= math.ceil(64 / 32)
    assert measured.step_s > 0 and measured.eval_s > 0 and math.isnan(measured.val_eval_s)
    assert measured.cell_s == pytest.approx(measured.step_s * measured.steps + measured.eval_s)
    assert measured.peak_mib is None and measured.missing == ""
    table, missing = estimate_cells([cell, cell], jobs=2, calibrate_on="cpu")
    assert missing == [] and table["cells"].tolist() == [2, 2]
    assert table["total_s"].iloc[-1] == pytest.approx(
        (table["total_s"].iloc[0] + 2 * 0.5) / 2, abs=0.02)


def test_absent_local_data_is_listed_with_the_expected_files(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"], tasks=["registration_modelnet40_dcp"],
                          models=["dcp"], tiny=[
                              f"bench.tasks.registration.Registration.root = '{tmp_path}/none'"])
    assert bench_cli("estimate", str(matrix), "--results", str(tmp_path / "r"),
                     "--calibrate") == 0
    out = capsys.readouterr().out
    assert "1 cell(s) need local data that is absent" in out
    assert "ply_data_train*.h5" in out and f"{tmp_path}/none" in out


def test_estimate_from_measured_runs_and_refuses_without_timings(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "r"
    assert bench_cli("estimate", str(matrix), "--results", str(results)) == 2
    assert "--calibrate" in capsys.readouterr().err
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    other = write_matrix(tmp_path, ["plain"], seeds=[1])  # not run yet: timed from seed 0's run
    capsys.readouterr()
    assert bench_cli("estimate", str(other), "--results", str(results)) == 0
    out = capsys.readouterr().out
    assert "1 cells, 1 to run" in out and "measured" in out


def test_calibration_times_the_whole_evaluation_with_the_cell_threads(tmp_path: Path,
                                                                      monkeypatch) -> None:
    """The evaluation a cell runs (every batch, metrics, landscape) is timed once, on each split
    when asked, under the threads a pool cell gets; the driver's threads are restored."""
    import torch

    from bench.protocol import estimate
    from bench.runner import evaluate

    (cell,) = expand_cells(load_matrix(write_matrix(tmp_path, ["plain"]))[0], tmp_path / "r")
    seen, original = [], evaluate.evaluate

    def counting(exp, device, rec):
        seen.append((exp.eval_split, torch.get_num_threads()))
        return original(exp, device, rec)

    monkeypatch.setattr(evaluate, "evaluate", counting)
    before = torch.get_num_threads()
    measured = estimate.calibrate(cell, "cpu", steps=1, threads=1, val=True)
    assert seen == [("test", 1), ("val", 1)] and torch.get_num_threads() == before
    assert measured.eval_s > 0 and measured.val_eval_s > 0


def test_tune_estimate_calibrates_every_combination(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """`tune --estimate calibrate`: a calibrated time for every row, tuning cells paying a whole
    validation evaluation each; nothing is written."""
    from tests.test_tune import write_tuning

    matrix = write_tuning(tmp_path / "t")
    assert bench_cli("tune", str(matrix), "--estimate", "calibrate", "--jobs", "2",
                     "--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines()[1:] if "TOTAL" not in line]
    assert len(rows) == 2 and all("calibrated: train" in r and "(val" in r for r in rows)
    assert not (tmp_path / "out").exists()
