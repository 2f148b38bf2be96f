"""End-to-end runner tests on tiny alignment1d cells: store layout, resume, failures, executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.schema import COLUMNS
from tests.conftest import REPO, bench_cli, run_records, write_matrix, write_plugin


def test_end_to_end_store_layout_and_resume(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain", "dlc"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0

    records = run_records(results)
    assert len(records) == 2 and {r["objective"] for r in records.values()} == {"plain", "dlc"}
    for run_id, record in records.items():
        assert record["status"] == "done", record.get("traceback")
        folder = results / "runs" / run_id
        for name in ("config.gin", "operative.gin", "metrics.parquet", "run.json"):
            assert (folder / name).stat().st_size > 0, name
        assert "Experiment.epochs = 1" in (folder / "operative.gin").read_text()
        assert record["step_time_s"] > 0 and record["seed"] == 0 and record["device"] == "cpu"
        frame = pd.read_parquet(folder / "metrics.parquet")
        assert list(frame.columns) == COLUMNS
        assert set(frame["phase"]) == {"train", "test", "test_iter", "landscape"}
        by_phase = frame.groupby("phase")["metric"].apply(set)
        assert "train_loss" in by_phase["train"]
        assert {"distance", "optimality_gap", "success@1"} <= by_phase["test"]
        assert by_phase["landscape"] == {"violation_rate", "slice_t", "slice_h"}
        iters = frame[(frame.phase == "test_iter") & (frame.metric == "distance")]
        assert sorted(iters["step"]) == list(range(5))  # initial point + 4 iterations
    dlc_run = next(r for r in records.values() if r["objective"] == "dlc")
    dlc_metrics = pd.read_parquet(results / "runs" / dlc_run["run_id"] / "metrics.parquet")
    assert {"train_hinge", "train_hinge_t1"} <= set(dlc_metrics["metric"])

    table = pd.read_parquet(results / "results.parquet")
    assert len(table) == sum(len(pd.read_parquet(results / "runs" / r / "metrics.parquet"))
                             for r in records)
    assert (results / "results.csv").exists() and (results / "runs.csv").exists()

    assert bench_cli("report", str(results), "--format", "md,tex,csv") == 0
    final = (results / "report" / "tables" / "alignment1d_final_error.md").read_text()
    assert "| plain " in final and "| dlc " in final and "distance ↓" in final
    assert (results / "report" / "tables" / "alignment1d_final_error.tex").stat().st_size
    index = (results / "report" / "index.md").read_text()
    assert "figures/alignment1d_nonlinear__conv1d_test_iter_distance.png" in index

    stamps = {r: (results / "runs" / r / "run.json").stat().st_mtime_ns for r in records}
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert stamps == {r: (results / "runs" / r / "run.json").stat().st_mtime_ns for r in records}


def test_a_changed_config_supersedes_the_old_run(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress",
                     "--gin_bindings", "bench.run.Experiment.lr = 0.01") == 0
    runs = pd.read_parquet(results / "runs.parquet")
    assert sorted(runs["status"]) == ["done", "superseded"]
    new = runs.loc[runs.status == "done", "run_id"].item()
    assert "lr = 0.01" in (results / "runs" / new / "config.gin").read_text()
    table = pd.read_parquet(results / "results.parquet")
    assert set(table["run_id"]) == {new}


def test_same_cell_twice_gives_identical_metrics(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["dlc"])
    frames = []
    for name in ("a", "b"):
        assert bench_cli("run", str(matrix), "--results", str(tmp_path / name), "--no-progress") == 0
        frames.append(pd.read_parquet(tmp_path / name / "results.parquet"))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_seed_changes_training(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain"], seeds=[0, 1])
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "o"), "--no-progress") == 0
    table = pd.read_parquet(tmp_path / "o" / "results.parquet")
    loss = table[table.metric == "train_loss"].set_index("seed")["value"]
    assert loss[0] != loss[1]


PLUGIN = '''
import gin, torch
import bench.tasks.base
from bench.objectives import Objective, ObjectiveOutput, Plain

@gin.configurable(module="my_plugin")
class NanAfter(Plain):
    """Plain loss, NaN from step `at` on (tests divergence handling)."""
    def __init__(self, at: int = 1):
        super().__init__()
        self.at, self.calls = at, 0
    def forward(self, task, model, outputs, batch):
        out = super().forward(task, model, outputs, batch)
        self.calls += 1
        if self.calls > self.at:
            out.loss = out.loss * float("nan")
        return out

@gin.configurable(module="my_plugin")
class Boom(Objective):
    def forward(self, task, model, outputs, batch):
        raise RuntimeError("boom in a user objective")

@gin.configurable(module="my_plugin")
class DoubledPlain(Plain):
    """A user baseline: twice the original loss."""
    def forward(self, task, model, outputs, batch):
        out = super().forward(task, model, outputs, batch)
        return ObjectiveOutput(2 * out.loss, out.original, out.logs)

class OtherFamilyModel(bench.tasks.base.Model):
    family = "not_alignment1d"

gin.external_configurable(OtherFamilyModel, module="my_plugin")

@gin.configurable(module="my_plugin")
class Crash(Objective):
    """Kills its worker process the way a segfault would."""
    def forward(self, task, model, outputs, batch):
        import os
        os._exit(139)
'''


def _plugin_files(plugin_dir: Path) -> dict[str, Path]:
    return write_plugin(plugin_dir, "my_plugin", PLUGIN, {
        "nan": "bench.run.Experiment.objective = @my_plugin.NanAfter()\nmy_plugin.NanAfter.at = 1",
        "boom": "bench.run.Experiment.objective = @my_plugin.Boom()",
        "doubled": "bench.run.Experiment.objective = @my_plugin.DoubledPlain()",
        "other_model": "bench.run.Experiment.model = @my_plugin.OtherFamilyModel()",
        "crash": "bench.run.Experiment.objective = @my_plugin.Crash()",
    })


def test_diverged_failed_and_user_objective(tmp_path: Path, plugin_dir: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    files = _plugin_files(plugin_dir)
    matrix = write_matrix(tmp_path, ["plain", str(files["nan"]), str(files["boom"]),
                                     str(files["doubled"])])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    by_objective = {r["objective"]: r for r in run_records(results).values()}
    assert by_objective["plain"]["status"] == "done"
    assert by_objective["doubled"]["status"] == "done"
    # the (task, model)'s facts are recorded, and the runs table carries them to the report
    from bench.tasks.alignment1d import FACTS

    plain = by_objective["plain"]
    assert plain["facts"] == FACTS.resolve(plain["task"], plain["model"]).as_dict()
    table = pd.read_parquet(results / "runs.parquet").set_index("run_id")
    assert json.loads(table.loc[plain["run_id"], "facts"]) == plain["facts"]
    assert by_objective["nan"]["status"] == "diverged"
    assert "step 1" in by_objective["nan"]["reason"]
    assert by_objective["boom"]["status"] == "failed"
    assert "boom in a user objective" in by_objective["boom"]["traceback"]
    err = capsys.readouterr().err
    assert "2 cell(s) did not finish" in err and "boom in a user objective" in err

    # failed and diverged cells are not cached: a re-run retries exactly those two
    done_stamp = (results / "runs" / by_objective["plain"]["run_id"] / "run.json").stat().st_mtime_ns
    assert bench_cli("run", str(matrix), "--results", str(results), "--dry-run") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert sum(line.endswith("to run (was failed)") for line in lines) == 1
    assert sum(line.endswith("to run (was diverged)") for line in lines) == 1
    assert sum(line.endswith(" done") for line in lines) == 2
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    assert done_stamp == (
        results / "runs" / by_objective["plain"]["run_id"] / "run.json").stat().st_mtime_ns


def test_incompatible_cells_are_skipped_with_reason(tmp_path: Path, plugin_dir: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    files = _plugin_files(plugin_dir)
    matrix = write_matrix(tmp_path, ["plain"], models=["conv1d", str(files["other_model"])])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "skipped: model OtherFamilyModel is for task family 'not_alignment1d'" in out
    assert not results.exists()  # a dry run writes nothing
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    statuses = sorted(r["status"] for r in run_records(results).values())
    assert statuses == ["done", "skipped"]
    skipped = next(r for r in run_records(results).values() if r["status"] == "skipped")
    assert "not_alignment1d" in skipped["reason"]


@pytest.mark.slow  # ~16 s: a driver killed mid-run, then a full rerun
def test_kill_minus_nine_then_rerun_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain", "dlc", "margin"], seeds=[0, 1])
    results = tmp_path / "out"
    cmd = [sys.executable, "-m", "bench", "run", str(matrix), "--results", str(results),
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((results / "runs").glob("*/run.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*/run.json")}
    assert 2 <= len(finished) < 6, "the kill should land mid-matrix"

    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True).returncode == 0
    records = run_records(results)
    assert len(records) == 6 and all(r["status"] == "done" for r in records.values())
    assert not [p for p in (results / "runs").iterdir() if p.name.startswith(".")]
    for run_id, stamp in finished.items():  # finished cells were not run again
        assert (results / "runs" / run_id / "run.json").stat().st_mtime_ns == stamp
    table = pd.read_parquet(results / "results.parquet")
    assert not table.duplicated(["run_id", "phase", "step", "metric"]).any()
    assert table["run_id"].nunique() == 6


@pytest.mark.slow  # a second driver process / a cluster executor's start-up
def test_one_driver_at_a_time_per_results_folder(tmp_path: Path) -> None:
    from filelock import FileLock

    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    results.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "stderr.txt"
    with FileLock(str(results / ".run.lock")), log.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(matrix), "--results",
                                 str(results), "--no-progress"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.time() + 120
        while "another `bench run` is writing to" not in log.read_text():
            assert proc.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(0.5)
        assert proc.poll() is None, "the second driver must wait for the lock"
        assert not (results / "runs").exists()
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert len(run_records(results)) == 1


@pytest.mark.slow  # a process pool next to a sequential run
def test_local_executor_matches_sequential(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain", "dlc"])
    # the same torch thread count for both: threads change float reductions in the last digits
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "seq"), "--threads", "1",
                     "--no-progress") == 0
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "loc"), "--executor", "local",
                     "--jobs", "2", "--threads", "1", "--no-progress") == 0
    seq = pd.read_parquet(tmp_path / "seq" / "results.parquet")
    loc = pd.read_parquet(tmp_path / "loc" / "results.parquet")
    key = ["run_id", "phase", "step", "metric"]
    pd.testing.assert_frame_equal(seq.sort_values(key).reset_index(drop=True),
                                  loc.sort_values(key).reset_index(drop=True))
    pids = {r["pid"] for r in run_records(tmp_path / "loc").values()}
    assert len(pids) == 2 and os.getpid() not in pids  # one fresh process per cell


def test_a_dying_worker_fails_only_its_own_cell(tmp_path: Path, plugin_dir: Path) -> None:
    files = _plugin_files(plugin_dir)
    matrix = write_matrix(tmp_path, ["plain", str(files["crash"]), "margin"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--executor", "local",
                     "--jobs", "2", "--threads", "1", "--no-progress") == 1
    by_objective = {r["objective"]: r for r in run_records(results).values()}
    assert by_objective["plain"]["status"] == "done"
    assert by_objective["margin"]["status"] == "done"
    assert by_objective["crash"]["status"] == "failed"
    assert "worker process died" in by_objective["crash"]["reason"]


@pytest.mark.slow  # a second driver process / a cluster executor's start-up
def test_submitit_local_executor(tmp_path: Path) -> None:
    import submitit  # noqa: F401 - a dev dependency (pyproject `dev` extra): never skipped
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--executor", "submitit",
                     "--no-progress") == 0
    assert [r["status"] for r in run_records(results).values()] == ["done"]


def test_cli_axis_overrides_and_list(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--objectives", "margin",
                     "--seeds", "3", "--gin_bindings", "bench.objectives.Margin.margin = 0.5",
                     "--no-progress") == 0
    (record,) = run_records(results).values()
    assert record["objective"] == "margin" and record["seed"] == 3
    assert "bench.objectives.Margin.margin = 0.5" in record["bindings"]
    assert "margin = 0.5" in (results / "runs" / record["run_id"] / "operative.gin").read_text()
    capsys.readouterr()
    assert bench_cli("list", str(results)) == 0
    assert record["run_id"] in capsys.readouterr().out


@pytest.mark.slow  # a second driver process / a cluster executor's start-up
def test_ray_executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray  # noqa: F401 - a dev dependency (pyproject `dev` extra): never skipped
    monkeypatch.setenv("HOME", str(tmp_path))  # ray writes ~/.ray (auth token) on first init
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    matrix = write_matrix(tmp_path, ["plain", "dlc"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--executor", "ray",
                     "--jobs", "2", "--no-progress") == 0
    records = run_records(results)
    assert sorted(r["status"] for r in records.values()) == ["done", "done"]
    assert os.getpid() not in {r["pid"] for r in records.values()}


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cells_run_on_cuda_and_pin_one_gpu_per_worker(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain", "dlc"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--device", "cuda",
                     "--executor", "local", "--jobs", "2", "--no-progress") == 0
    for record in run_records(results).values():
        assert record["device"].startswith("cuda") and record["device_name"]
        assert record["cuda_visible_devices"] is not None
