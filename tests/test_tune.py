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

from bench.runner.matrix import expand_cells, load_matrix
from bench.runner.run import run_cell
from tests.conftest import REPO, bench_cli

pytestmark = pytest.mark.slow  # tuning runs of real cells (seconds each); CI runs it in its slow step

SIZES = ["bench.run.Experiment.epochs = 1", "bench.tasks.alignment1d.Alignment1D.n_train = 320",
         "bench.tasks.alignment1d.Alignment1D.n_test = 64", "bench.run.Experiment.landscape_examples = 8"]
SWEEP = """
bench.sweep.Sweep:
    spaces = {{
        'plain': {{'bench.run.Experiment.lr': {{'min': 1e-3, 'max': 1e-2, 'scaling': 'log'}}}},
        'dlc': {{'bench.run.Experiment.lr': {{'min': 1e-3, 'max': 1e-2, 'scaling': 'log'}},
                'bench.objectives.DLC.weight': {{'feasible_points': [1e-4, 3.0]}}}},
    }}
    trials = {trials}
    design = '{design}'
    resolution = {{'bench.run.Experiment.lr': 2}}
    tuning_seeds = [0, 1]
    rungs = {rungs}
    reduction_factor = {{'plain': 2, 'dlc': 4}}
    metric = 'distance'
    direction = 'min'
    final_seeds = [100, 101]
    budgets = {budgets}
    sampler = '{sampler}'
"""
# the halving fixture: 2 epochs, one rung at epoch 1 (plain keeps 1 of 2 trials, DLC 1 of 4)
HALVING = dict(design="nested", rungs="[0.4]", budgets="[]", epochs=2)


def write_tuning(folder: Path, trials="2", budgets="[1]", sampler="halton", design="quasirandom",
                 rungs="[]", epochs=1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.gin").write_text(SWEEP.format(trials=trials, budgets=budgets,
                                                   sampler=sampler, design=design, rungs=rungs))
    sizes = [b.replace("epochs = 1", f"epochs = {epochs}") for b in SIZES]
    bindings = ",\n        ".join(repr(b) for b in sizes)
    matrix = folder / "matrix.gin"
    matrix.write_text(
        "bench.matrix.Matrix:\n    tasks = ['alignment1d_nonlinear']\n    models = ['conv1d']\n"
        "    objectives = ['plain', 'dlc']\n    seeds = [0]\n    scale = 'smoke'\n"
        f"    sweep = '{folder / 'sweep.gin'}'\n    bindings = [\n        {bindings}]\n")
    return matrix


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tune")
    matrix = write_tuning(folder, **HALVING)
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
        ("dlc", 0), ("dlc", 1), ("dlc", 2), ("dlc", 3), ("plain", 0), ("plain", 1)]
    phases = phases_of(out / "trials") | phases_of(out / "rungs")
    assert {"val", "val_iter"} <= phases
    assert not {p for p in phases if p.startswith("test")}
    # nested design: every DLC weight is crossed with both of plain's learning rates
    lr = "bench.run.Experiment.lr"
    plain = {e["params"][lr] for e in manifest if e["objective"] == "plain"}
    for weight in (1e-4, 3.0):
        dlc = {e["params"][lr] for e in manifest if e["objective"] == "dlc"
               and e["params"]["bench.objectives.DLC.weight"] == weight}
        assert dlc == plain and len(plain) == 2


def test_halving_prunes_synchronously_and_records_partial_budgets(tuned) -> None:
    _, out = tuned
    manifest = json.loads((out / "trials.json").read_text())
    for objective, kept in (("plain", 1), ("dlc", 1)):  # reduction factors 2 and 4
        mine = [e for e in manifest if e["objective"] == objective]
        assert sum(e["reached_full"] for e in mine) == kept
        for entry in mine:  # every trial ran rung 0 (epoch 1 of 2) on both tuning seeds
            assert [r["epochs"] for r in entry["rungs"]] == [1] and entry["full_epochs"] == 2
            assert entry["epochs_trained"] == (3 if entry["reached_full"] else 1)
            assert (entry["pruned_at"] is None) == entry["reached_full"]
        # the survivor is the best mean rung score (distance: lower is better)
        best = min(mine, key=lambda e: (e["rungs"][0]["score"], e["trial"]))
        assert best["reached_full"]
    runs = [json.loads(p.read_text()) for p in out.glob("trials/*/runs/*/run.json")]
    assert len(runs) == 4 and all(r["status"] == "done" for r in runs)  # 2 survivors x 2 seeds
    # a rung is the first epoch of the full run's schedule: the promoted trial's restart retraces it
    survivor = next(e for e in manifest if e["objective"] == "plain" and e["reached_full"])
    train = []
    for folder, run_id in ((survivor["rungs"][0]["results"], survivor["rungs"][0]["run_ids"][0]),
                           (survivor["results"], survivor["run_ids"][0])):
        rows = pd.read_parquet(out / folder / "runs" / run_id / "metrics.parquet")
        rows = rows[(rows.phase == "train") & (rows.metric.isin(["train_loss", "train_lr"]))]
        train.append(rows[rows.step == 0].set_index("metric")["value"])
    assert train[0].to_dict() == train[1].to_dict()


def test_the_tuning_folder_keeps_its_sweep_file(tuned) -> None:
    matrix, out = tuned  # `report OUT` reads it to write the protocol report
    assert (out / "sweep.gin").read_text() == (matrix.parent / "sweep.gin").read_text()


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
    scores = pd.read_csv(out / "selected" / "trial_scores.csv")
    for objective in ("plain", "dlc"):
        path = out / "selected" / f"alignment1d_nonlinear-conv1d-{objective}.gin"
        text = path.read_text()
        assert f"= {chosen.loc[objective, 'score']:.6g}" in text.splitlines()[1]
        mine = scores[(scores.objective == objective)
                      & (scores.trial == chosen.loc[objective, "trial"])].set_index("seed")
        assert sorted(mine.index) == [0, 1]  # two tuning seeds, selection on their mean
        assert mine["score"].mean() == pytest.approx(chosen.loc[objective, "score"], rel=1e-12)
        part = replace(load_matrix(matrix)[0], objectives=[objective], seeds=[0])
        cell = expand_cells(part, tmp_path, (str(path),),
                            ["bench.run.Experiment.eval_split = 'val'"])[0]
        # the trial's torch thread count: threads change float reductions in the last digits
        # (recorded in run.json, not part of the cache key), so the rerun uses the same number
        trial = out / chosen.loc[objective, "results"] / "runs" / mine.loc[0, "run_id"]
        threads = json.loads((trial / "run.json").read_text())["threads"]
        before = torch.get_num_threads()
        try:
            assert run_cell(replace(cell, threads=threads))["status"] == "done"
        finally:
            torch.set_num_threads(before)
        rows = pd.read_parquet(tmp_path / "runs" / cell.run_id / "metrics.parquet")
        rerun = rows[(rows.phase == "val") & (rows.metric == "distance")]["value"].iloc[-1]
        assert rerun == pytest.approx(mine.loc[0, "score"], rel=1e-6, abs=1e-9)


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
    for needle in ("Selected configs", "p (Holm, valid rows)", "Budget 0", "Tuning compute",
                   "| 2 trials"):
        assert needle in index
    figures = {p.name for p in (out / "report" / "figures").iterdir()}
    assert {"sensitivity-alignment1d_nonlinear-conv1d.png",
            "budget-alignment1d_nonlinear-conv1d.png", "profile.png"} <= figures
    table = pd.read_csv(out / "report" / "comparisons.csv")
    # alignment1d/conv1d is an iterative, learned pair: a valid row; a winner at beta = 1e-4 is
    # "reduced to plain" rather than a verdict on DLC
    assert table["class"].iloc[0] == "valid"
    assert table["verdict"].iloc[0] in ("better", "worse", "no evidence", "reduced to plain")
    for needle in ("Selection stability", "Rank correlation"):
        assert needle in index
    assert table["n"].iloc[0] == 2
    assert bench_cli("report", str(out), "--out", str(out / "again")) == 0  # from sweep.gin
    assert "Holm" in (out / "again" / "comparisons.tex").read_text()


def test_unequal_budgets_are_refused_unless_allowed(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    matrix = write_tuning(tmp_path, trials="{'plain': 2, 'dlc': 1}", budgets="[]")
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run") == 2
    assert "unequal tuning budgets" in capsys.readouterr().err
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run",
                     "--allow-unequal-budgets") == 0
    assert "6 cells, 6 to run" in capsys.readouterr().out  # 3 trials x 2 tuning seeds
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


@pytest.mark.slow  # a tuning run killed and resumed
def test_killed_tune_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    matrix = write_tuning(tmp_path, trials="3", budgets="[]")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench", "tune", str(matrix), "--out", str(out),
           "--phase", "tune", "--allow-unequal-budgets"]  # quasi-random: resolution unchecked
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("trials/*/runs/*/run.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/runs/*/run.json")}
    assert 2 <= len(finished) < 12, "the kill should land mid-sweep"
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{12 - len(finished)} to run" in done.stdout
    for path, stamp in finished.items():  # finished trials were not run again
        assert path.stat().st_mtime_ns == stamp
    records = [json.loads(p.read_text()) for p in out.glob("trials/*/runs/*/run.json")]
    assert len(records) == 12 and all(r["status"] == "done" for r in records)


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
    matrix = write_tuning(tmp_path, **HALVING)
    sweep = tmp_path / "sweep.gin"
    sweep.write_text(sweep.read_text().replace("DLC.weight", "DLC.wieght"))
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{sweep}, line 6: objective 'dlc'" in err and "did you mean" in err


def test_shipped_tuning_matrices_plan(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # `bench tune smoke`, rung 0: (2 + 4) trials x 2 tuning seeds per (task, model); the models
    # with nothing to train (ICP, raw LK) get no trials: their defaults run in the final phase
    assert bench_cli("tune", "smoke", "--out", str(tmp_path / "smoke"), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "108 cells, 108 to run" in out and "-rawlk-" not in out and "-icp-" not in out
    # the cpu comparison: equal compute per objective (to within one trial), an estimate for
    # every cell
    assert bench_cli("tune", "cpu_tuned", "--estimate", str(REPO / "results" / "cpu_budget0"),
                     "--jobs", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:] if "TOTAL" not in line]
    tuned = [row for row in rows if row[2] != "rawlk"]
    equiv = {float(row[6]) for row in tuned}
    assert tuned and max(equiv) - min(equiv) < 2 and {row[5] for row in rows} == {"10"}
    assert [row[4] for row in rows if row[2] == "rawlk"] == ["0"]  # a reference: no trials
    # every combination the committed budget-0 runs measured has an estimate; raw LK (never run
    # there) and the KL-form sequence tasks are newer than those runs
    never = {row[2] if row[2] == "rawlk" else row[1] for row in rows if "never" in row}
    assert never == {"rawlk", "sequence_digits_kl", "sequence_mnist1d_kl"}, never


def _fine_tuning_tuning(folder: Path) -> Path:
    """A tuning matrix with a fine-tuning objective whose search space is plain's: the parent of
    `plain_ft`'s trial t IS plain's trial t (the same config and seed)."""
    import re

    matrix = write_tuning(folder, trials="1", budgets="[]")
    sweep = folder / "sweep.gin"
    text = re.sub(r"'dlc': \{.*?\]\}\},", "'plain_ft': {'bench.run.Experiment.lr': "
                  "{'min': 1e-3, 'max': 1e-2, 'scaling': 'log'}},", sweep.read_text(), flags=re.S)
    sweep.write_text(text.replace("'dlc': 4", "'plain_ft': 2"))
    matrix.write_text(matrix.read_text().replace("['plain', 'dlc']", "['plain', 'plain_ft']"))
    return matrix


def test_tune_lists_a_shared_fine_tuning_parent_once(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    matrix = _fine_tuning_tuning(tmp_path)
    assert bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--phase", "tune",
                     "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    run_ids = [line.split()[0] for line in lines[:-1]]
    # per tuning seed (2): plain trial 0 (= plain_ft's parent) and plain_ft, each listed once
    assert len(run_ids) == len(set(run_ids)) == 4
    assert lines[-1] == "4 cells, 4 to run"


@pytest.mark.slow  # a local pool of 3 workers on a fine-tuning sweep
def test_tune_runs_a_fine_tuning_child_after_its_parent_in_a_pool(tmp_path: Path) -> None:
    matrix = _fine_tuning_tuning(tmp_path)
    out = tmp_path / "o"
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune",
                     "--executor", "local", "--jobs", "3") == 0
    records = [json.loads(p.read_text()) for p in out.glob("trials/*/runs/*/run.json")]
    assert sorted(r["objective"] for r in records) == ["plain", "plain", "plain_ft", "plain_ft"]
    assert all(r["status"] == "done" for r in records)


def test_tune_hands_the_matrix_resources_to_the_executor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.runner.cell_runner

    matrix = write_tuning(tmp_path, trials="1", budgets="[]")
    matrix.write_text(matrix.read_text() + "bench.executors.Resources.mem_gb = 3.5\n"
                      "bench.executors.Resources.timeout_min = 7\n")
    seen = []

    def fake_execute(cells, executor, jobs, threads, resources):
        seen.append((executor, resources))
        return iter(())

    monkeypatch.setattr(bench.runner.cell_runner, "execute", fake_execute)
    bench_cli("tune", str(matrix), "--out", str(tmp_path / "o"), "--phase", "tune",
              "--executor", "submitit")
    assert seen and all(e == "submitit" and r.mem_gb == 3.5 and r.timeout_min == 7
                        for e, r in seen)


def _damage_trial(out: Path, name: str) -> Path:
    """Truncate trials.json or the first trial run's run.json / metrics.parquet; returns it."""
    if name == "trials.json":
        path = out / name
    else:
        path = sorted(out.glob(f"trials/*/runs/*/{name}"))[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("name", ["trials.json", "run.json", "metrics.parquet"])
def test_select_names_a_damaged_trial_file_and_tune_re_runs_it(
        tuned, tmp_path: Path, name: str, capsys: pytest.CaptureFixture) -> None:
    import shutil

    matrix, reference = tuned
    out = shutil.copytree(reference, tmp_path / "out", ignore=shutil.ignore_patterns("selected"))
    damaged = _damage_trial(out, name)
    capsys.readouterr()
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "select") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(damaged) in err, err
    assert not (out / "selected" / "selected.csv").exists()
    # the tuning phase re-runs the damaged trial (the manifest is written again), nothing else
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune") == 0
    assert f"4 cells: {0 if name == 'trials.json' else 1} to run" in capsys.readouterr().out
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "select") == 0
    scores = pd.read_csv(out / "selected" / "trial_scores.csv")
    # every seed of every trial: done, or stopped by halving (6 trials x 2 tuning seeds)
    assert len(scores) == 12 and set(scores["status"]) == {"done", "pruned"}


def test_protocol_report_counts_unfinished_trials() -> None:
    from bench.protocol.trial_counts import trial_statuses, trial_text

    scores = pd.DataFrame({"task": "t", "model": "m", "objective": "dlc",
                           "trial": [0, 0, 1, 1, 2, 2, 3, 3],
                           "status": ["done", "done", "done", "diverged", "failed", "done",
                                      "done", "done"], "run_id": list("abcdefgh")})
    trials = trial_statuses(scores)
    assert trials["status"].tolist() == ["done", "diverged", "failed", "done"]
    assert trial_text(trials["status"]) == "4 trials, 1 diverged, 1 failed"
    assert trial_text(pd.Series(["done"] * 8)) == "8 trials"


def test_protocol_selection_values_read_only_the_given_runs(tmp_path: Path) -> None:
    """`final/` may hold an earlier winner's runs (a changed sweep, re-tuned into the same folder):
    the protocol report reads only the runs of the selected configs on the final seeds."""
    from types import SimpleNamespace

    from bench.report.tuned import selection_values

    rows = [dict(run_id=run_id, task="t", model="m", objective="dlc", seed=seed, phase="test",
                 step=0, metric="distance", value=value)
            for run_id, seed, value in (("old-s100", 100, 9.0), ("new-s100", 100, 1.0),
                                        ("new-s101", 101, 2.0), ("old-s102", 102, 9.0))]
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    sweep = SimpleNamespace(metric_of=lambda task: ("distance", "min"))
    values = selection_values(tmp_path, sweep, run_ids={"new-s100", "new-s101"})
    assert sorted(zip(values["seed"], values["value"])) == [(100, 1.0), (101, 2.0)]
