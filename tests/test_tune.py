"""`bench tune`: trials are validation-only cells, selection writes gin, finals run on fresh seeds.

One smoke-scale sweep (alignment1d, 2 trials per objective, 2 final seeds) is tuned once per test
session; the tests read what it wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from bench.matrix import expand_cells, load_matrix
from bench.run import run_cell
from tests.conftest import REPO, bench_cli

SIZES = ["bench.run.Experiment.epochs = 1", "bench.tasks.alignment1d.Alignment1D.n_train = 320",
         "bench.tasks.alignment1d.Alignment1D.n_test = 64", "bench.run.Experiment.landscape_examples = 8"]
SWEEP = """
bench.sweep.Sweep:
    spaces = {{
        'plain': {{'bench.run.Experiment.lr': {{'min': 1e-3, 'max': 1e-2, 'scaling': 'log'}}}},
        'dlc': {{'bench.run.Experiment.lr': {{'min': 1e-3, 'max': 1e-2, 'scaling': 'log'}},
                'bench.objectives.DLC.weight': {{'feasible_points': [0.3, 3.0]}}}},
    }}
    trials = {trials}
    metric = 'distance'
    direction = 'min'
    final_seeds = [100, 101]
    budgets = {budgets}
    sampler = '{sampler}'
"""


def write_tuning(folder: Path, trials="2", budgets="[1]", sampler="halton") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.gin").write_text(SWEEP.format(trials=trials, budgets=budgets,
                                                   sampler=sampler))
    bindings = ",\n        ".join(repr(b) for b in SIZES)
    matrix = folder / "matrix.gin"
    matrix.write_text(
        "bench.matrix.Matrix:\n    tasks = ['alignment1d_nonlinear']\n    models = ['conv1d']\n"
        "    objectives = ['plain', 'dlc']\n    seeds = [0]\n    scale = 'smoke'\n"
        f"    sweep = '{folder / 'sweep.gin'}'\n    bindings = [\n        {bindings}]\n")
    return matrix


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tune")
    matrix = write_tuning(folder)
    out = folder / "out"
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune") == 0
    return matrix, out


def phases_of(folder: Path) -> set[str]:
    frames = [pd.read_parquet(p) for p in folder.glob("**/metrics.parquet")]
    return set(pd.concat(frames)["phase"]) if frames else set()


def test_tuning_phase_writes_no_test_metric(tuned) -> None:
    _, out = tuned
    manifest = json.loads((out / "trials.json").read_text())
    assert sorted((e["objective"], e["trial"]) for e in manifest) == [
        ("dlc", 0), ("dlc", 1), ("plain", 0), ("plain", 1)]
    phases = phases_of(out / "trials")
    assert {"val", "val_iter"} <= phases
    assert not {p for p in phases if p.startswith("test")}
    # plain and DLC trial t share the learning rate (quasi-random, shared axis)
    lr = {(e["objective"], e["trial"]): e["params"]["bench.run.Experiment.lr"] for e in manifest}
    assert lr[("plain", 0)] == lr[("dlc", 0)] and lr[("plain", 1)] == lr[("dlc", 1)]


def test_a_tuning_cell_refuses_the_test_split(tmp_path: Path, tuned) -> None:
    matrix, _ = tuned
    part = replace(load_matrix(matrix)[0], objectives=["plain"])
    cell = expand_cells(part, tmp_path, (), ["bench.run.Experiment.eval_split = 'test'"])[0]
    outcome = run_cell(replace(cell, eval_split="val"))
    assert outcome["status"] == "failed" and "may only evaluate the 'val' split" in outcome["reason"]
    assert not phases_of(tmp_path)


def test_selected_config_rerun_gives_the_same_validation_score(tmp_path: Path, tuned) -> None:
    matrix, out = tuned
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "select") == 0
    chosen = pd.read_csv(out / "selected" / "selected.csv").set_index("objective")
    for objective in ("plain", "dlc"):
        path = out / "selected" / f"alignment1d_nonlinear-conv1d-{objective}.gin"
        text = path.read_text()
        assert f"= {chosen.loc[objective, 'score']:.6g}" in text.splitlines()[1]
        part = replace(load_matrix(matrix)[0], objectives=[objective])
        cell = expand_cells(part, tmp_path, (str(path),),
                            ["bench.run.Experiment.eval_split = 'val'"])[0]
        # the trial's torch thread count: threads change float reductions in the last digits
        # (recorded in run.json, not part of the cache key), so the rerun uses the same number
        trial = out / chosen.loc[objective, "results"] / "runs" / chosen.loc[objective, "run_id"]
        threads = json.loads((trial / "run.json").read_text())["threads"]
        before = torch.get_num_threads()
        try:
            assert run_cell(replace(cell, threads=threads))["status"] == "done"
        finally:
            torch.set_num_threads(before)
        rows = pd.read_parquet(tmp_path / "runs" / cell.run_id / "metrics.parquet")
        rerun = rows[(rows.phase == "val") & (rows.metric == "distance")]["value"].iloc[-1]
        assert rerun == pytest.approx(chosen.loc[objective, "score"], rel=1e-6, abs=1e-9)


@pytest.mark.slow  # the final phase: fresh seeds on test, then the report
def test_final_phase_runs_fresh_seeds_on_test_and_reports(tuned) -> None:
    matrix, out = tuned
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "select") == 0
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "final") == 0
    final = pd.read_parquet(out / "final" / "results.parquet")
    assert sorted(final[["objective", "seed"]].drop_duplicates().itertuples(index=False)) == [
        ("dlc", 100), ("dlc", 101), ("plain", 100), ("plain", 101)]
    assert "test" in set(final["phase"]) and "val" not in set(final["phase"])
    assert (out / "budget0" / "results.parquet").is_file()
    index = (out / "report" / "index.md").read_text()
    for needle in ("Selected configs", "p (Holm)", "Budget 0", "Tuning compute"):
        assert needle in index
    figures = {p.name for p in (out / "report" / "figures").iterdir()}
    assert {"sensitivity-alignment1d_nonlinear-conv1d.png",
            "budget-alignment1d_nonlinear-conv1d.png", "profile.png"} <= figures
    table = pd.read_csv(out / "report" / "comparisons.csv")
    assert table["verdict"].iloc[0] in ("better", "worse", "no evidence")
    assert table["n"].iloc[0] == 2


def test_unequal_budgets_are_refused_unless_allowed(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    matrix = write_tuning(tmp_path, trials="{'plain': 2, 'dlc': 1}", budgets="[]")
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run") == 2
    assert "unequal tuning budgets" in capsys.readouterr().err
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run",
                     "--allow-unequal-budgets") == 0
    assert "3 cells, 3 to run" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


@pytest.mark.slow  # a tuning run killed and resumed
def test_killed_tune_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    matrix = write_tuning(tmp_path, trials="3", budgets="[]")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench", "tune", str(matrix), "--out", str(out),
           "--phase", "tune"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("trials/*/runs/*/run.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/runs/*/run.json")}
    assert 2 <= len(finished) < 6, "the kill should land mid-sweep"
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{6 - len(finished)} to run" in done.stdout
    for path, stamp in finished.items():  # finished trials were not run again
        assert path.stat().st_mtime_ns == stamp
    records = [json.loads(p.read_text()) for p in out.glob("trials/*/runs/*/run.json")]
    assert len(records) == 6 and all(r["status"] == "done" for r in records)


def test_tpe_trials_are_decided_once_and_reused_on_resume(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    matrix = write_tuning(tmp_path, budgets="[]", sampler="tpe")
    out = tmp_path / "out"
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune") == 0
    first = json.loads((out / "trials.json").read_text())
    assert sorted((e["objective"], e["trial"]) for e in first) == [
        ("dlc", 0), ("dlc", 1), ("plain", 0), ("plain", 1)]
    for entry in first:
        assert 1e-3 <= entry["params"]["bench.run.Experiment.lr"] <= 1e-2
    capsys.readouterr()
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune") == 0
    assert "0 to run" in capsys.readouterr().out
    assert json.loads((out / "trials.json").read_text()) == first


def test_a_misspelt_search_space_key_names_its_sweep_line(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    matrix = write_tuning(tmp_path)
    sweep = tmp_path / "sweep.gin"
    sweep.write_text(sweep.read_text().replace("DLC.weight", "DLC.wieght"))
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{sweep}, line 6: objective 'dlc'" in err and "did you mean" in err


def test_shipped_tuning_matrices_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # `bench tune smoke`: 2 trials x (10 task-model pairs x 2 objectives), ICP + DLC and raw LK
    # + DLC skipped (models with nothing to train run plain only)
    assert bench_cli("tune", "smoke", "--out", str(tmp_path / "smoke"), "--dry-run") == 0
    assert "40 cells, 36 to run" in capsys.readouterr().out
    # the cpu comparison: equal trial counts per objective, an estimate for every cell
    assert bench_cli("tune", "cpu_tuned", "--estimate", str(REPO / "results" / "cpu_budget0"),
                     "--jobs", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:] if "TOTAL" not in line]
    assert rows and {row[4] for row in rows} == {"8"} and {row[5] for row in rows} == {"10"}
    assert "never" not in "\n".join(lines)
