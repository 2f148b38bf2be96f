"""Results are never lost and never silently wrong (issue 10, classes 1 and 2).

Read commands (`list`, `report`) write nothing under the results folder; tables are rebuilt only by
`run` and `collect`, and never lose rows without `--force`; a damaged run folder is named, listed as
damaged and re-run; a worker cannot publish an incomplete folder; non-finite evaluation is diverged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.runner.store import IncompleteRun, RunWriter, is_done
from bench.schema import Status
from tests.conftest import bench_cli, run_records, write_matrix, write_weights


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(matrix file, results folder) of a finished two-cell matrix (plain, margin); copy it."""
    folder = tmp_path_factory.mktemp("reference")
    matrix = write_matrix(folder, ["plain", "margin"])
    results = folder / "results"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    return matrix, results


@pytest.fixture
def results(reference: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(reference[1], copy)
    return copy


@pytest.fixture
def matrix(reference: tuple[Path, Path]) -> Path:
    return reference[0]


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under `folder`: (mtime_ns, sha256 of the content)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        out[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, digest)
    return out


def ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Rows in a canonical order (row order is not part of the tables' contract)."""
    return table.sort_values(["run_id", "phase", "step", "metric"]).reset_index(drop=True)


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    return err


# --- 1. read commands never write; no command destroys results ---------------------------------
def test_list_and_report_on_tables_without_run_folders_write_nothing(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shutil.rmtree(results / "runs")  # tables copied off a cluster, without the run folders
    before = snapshot(results)
    runs = pd.read_parquet(results / "runs.parquet")
    capsys.readouterr()
    assert bench_cli("list", str(results)) == 0
    out = capsys.readouterr().out
    assert all(run_id in out for run_id in runs["run_id"])  # listed from the table
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 0
    assert snapshot(results) == before
    index = (tmp_path / "report" / "index.md").read_text()
    assert "No metrics recorded yet" not in index


def test_list_and_report_on_run_folders_write_nothing(results: Path, tmp_path: Path) -> None:
    before = snapshot(results)
    assert bench_cli("list", str(results)) == 0
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 0
    assert snapshot(results) == before


def test_report_writes_only_under_its_default_out(results: Path) -> None:
    before = snapshot(results)
    assert bench_cli("report", str(results)) == 0
    after = snapshot(results)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(k == "report" or k.startswith("report/") for k in changed), changed


@pytest.mark.parametrize("command", ["list", "report", "collect"])
def test_a_missing_results_folder_is_a_one_line_error(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope"
    assert bench_cli(command, str(missing)) == 2
    assert "nope" in one_line_error(capsys)
    assert not missing.exists()


@pytest.mark.parametrize("command", ["list", "report", "collect"])
def test_a_results_path_that_is_a_file_is_a_one_line_error(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "file.txt"
    path.write_text("not a folder")
    assert bench_cli(command, str(path)) == 2
    one_line_error(capsys)
    assert path.read_text() == "not a folder"


def test_read_commands_work_on_a_folder_they_may_not_write(
        results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """A read-only folder, simulated at the system-call boundary (the tests may run as root, for
    whom chmod does not stop writes): any write, rename or mkdir under `results` is refused."""
    root = str(results)

    def guard(fn, *positions):
        def wrapped(*args, **kwargs):
            for i in positions:
                if i < len(args) and str(args[i]).startswith(root):
                    raise PermissionError(13, "Permission denied", str(args[i]))
            return fn(*args, **kwargs)
        return wrapped

    real_open = open

    def guarded_open(file, mode="r", *args, **kwargs):
        if str(file).startswith(root) and any(c in mode for c in "wax+"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded_open)
    monkeypatch.setattr(os, "replace", guard(os.replace, 0, 1))
    monkeypatch.setattr(os, "rename", guard(os.rename, 0, 1))
    monkeypatch.setattr(os, "mkdir", guard(os.mkdir, 0))
    monkeypatch.setattr(os, "open", guard(os.open, 0))
    capsys.readouterr()
    assert bench_cli("list", str(results)) == 0
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 0
    assert (tmp_path / "report" / "index.md").exists()
    assert bench_cli("report", str(results)) == 2  # default out inside the folder: clear error
    assert "--out" in one_line_error(capsys)


def test_collect_keeps_rows_of_deleted_run_folders_unless_forced(
        results: Path, capsys: pytest.CaptureFixture) -> None:
    runs = pd.read_parquet(results / "runs.parquet")
    table = pd.read_parquet(results / "results.parquet")
    gone = runs["run_id"].iloc[0]
    shutil.rmtree(results / "runs" / gone)
    assert bench_cli("collect", str(results)) == 0
    pd.testing.assert_frame_equal(ordered(pd.read_parquet(results / "results.parquet")),
                                  ordered(table))
    assert set(pd.read_parquet(results / "runs.parquet")["run_id"]) == set(runs["run_id"])
    assert bench_cli("collect", str(results), "--force") == 0
    assert set(pd.read_parquet(results / "runs.parquet")["run_id"]) == set(runs["run_id"]) - {gone}
    assert set(pd.read_parquet(results / "results.parquet")["run_id"]) == set(table["run_id"]) - {gone}


def test_collect_refuses_to_drop_the_rows_of_a_damaged_done_run(
        results: Path, capsys: pytest.CaptureFixture) -> None:
    damaged = _damage(results, "truncated metrics")
    before = snapshot(results)
    capsys.readouterr()
    assert bench_cli("collect", str(results)) == 2
    err = one_line_error(capsys)
    assert "--force" in err and damaged in err
    assert snapshot(results) == before
    assert bench_cli("collect", str(results), "--force") == 0
    runs = pd.read_parquet(results / "runs.parquet").set_index("run_id")
    assert runs.loc[damaged, "status"] == Status.DAMAGED
    assert damaged not in set(pd.read_parquet(results / "results.parquet")["run_id"])


def test_collect_rebuilds_the_tables_from_the_run_folders(results: Path) -> None:
    expected = pd.read_parquet(results / "results.parquet")
    for name in ("results.parquet", "results.csv", "runs.parquet", "runs.csv"):
        (results / name).unlink()
    assert bench_cli("collect", str(results)) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(results / "results.parquet"), expected)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0] if args else "?"))


def test_a_full_disk_during_collect_leaves_all_four_tables_as_they_were(
        results: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Issue 20, item 9: the disk fills up at the third of the four table files (runs.parquet);
    results.* must not be new beside runs.* old."""
    shutil.rmtree(results / "runs" / pd.read_parquet(results / "runs.parquet")["run_id"].iloc[0])
    (results / "runs" / "x").mkdir()  # a change the rebuilt tables would show
    before = snapshot(results)
    real = pd.DataFrame.to_parquet

    def to_parquet(self, path, *args, **kwargs):
        if "runs.parquet" in str(path):
            _no_space(path)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    capsys.readouterr()
    assert bench_cli("collect", str(results)) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and "ENOSPC" in err, err
    assert snapshot(results) == before  # nothing replaced, no temporary file left


def test_a_full_disk_during_report_is_one_line(results: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(os, "fsync", _no_space)
    capsys.readouterr()
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 2
    err = one_line_error(capsys)
    assert "No space left on device" in err and str(tmp_path / "report") in err, err


@pytest.mark.parametrize("args, bad, allowed", [
    (["--format", "foo"], "foo", "md, tex, csv"), (["--format", "md,pdf"], "pdf", "md, tex, csv"),
    (["--baseline", "nosuch"], "nosuch", "margin, plain")])
def test_report_refuses_unknown_values_and_lists_the_allowed_ones(
        results: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], bad: str,
        allowed: str) -> None:
    """Issue 20, item 11: `--format foo` wrote nothing with exit 0, `--baseline nosuch` made no
    comparisons without a word."""
    capsys.readouterr()
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report"), *args) == 2
    err = one_line_error(capsys)
    assert bad in err and allowed in err, err
    assert not (tmp_path / "report").exists()


def test_run_keeps_table_rows_whose_run_folder_is_elsewhere(
        results: Path, matrix: Path, capsys: pytest.CaptureFixture) -> None:
    """Tables that hold more runs than the folder (copied off a cluster) are merged, not replaced."""
    runs = pd.read_parquet(results / "runs.parquet")
    extra = runs.iloc[[0]].assign(run_id="elsewhere-run", seed=7)
    pd.concat([runs, extra]).to_parquet(results / "runs.parquet", index=False)
    table = pd.read_parquet(results / "results.parquet")
    first = table[table.run_id == runs["run_id"].iloc[0]].assign(run_id="elsewhere-run", seed=7)
    pd.concat([table, first]).to_parquet(results / "results.parquet", index=False)
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert "elsewhere-run" in set(pd.read_parquet(results / "runs.parquet")["run_id"])
    assert len(pd.read_parquet(results / "results.parquet")) == len(table) + len(first)


# --- 2. a run folder marked done is complete and readable --------------------------------------
def test_publish_refuses_when_the_staging_folder_is_gone(tmp_path: Path) -> None:
    writer = RunWriter(tmp_path, "cell")
    writer.write_text("config.gin", "x = 1\n")
    shutil.rmtree(writer.stage)  # a second driver cleaned it up
    with pytest.raises(IncompleteRun, match="staging folder"):
        writer.publish({"run_id": "cell", "status": "failed", "reason": "x"})
    assert not (tmp_path / "runs" / "cell").exists() and not writer.stage.exists()


@pytest.mark.parametrize("missing", ["config.gin", "operative.gin", "metrics.parquet",
                                     "weights.safetensors"])
def test_publish_refuses_a_done_run_without_its_files(tmp_path: Path, missing: str) -> None:
    writer = RunWriter(tmp_path, "cell")
    for name in ("config.gin", "operative.gin"):
        if name != missing:
            writer.write_text(name, "x = 1\n")
    if missing != "metrics.parquet":
        writer.write_metrics([])
    if missing != "weights.safetensors":
        write_weights(writer.stage / "weights.safetensors")
    with pytest.raises(IncompleteRun, match=missing):
        writer.publish({"run_id": "cell", "status": "done", "reason": ""})
    assert not (tmp_path / "runs" / "cell").exists()


#: run.json fields made the wrong type (or an unknown status): the folder is damaged, field named
RECORD_DAMAGES = {"seed as text": ("seed", "0"), "null task": ("task", None),
                  "wall time as text": ("wall_time_s", "fast"), "finished as number": ("finished", 12345),
                  "unknown status": ("status", "banana")}


def _damage(results: Path, how: str) -> str:
    """Damage the first run folder; returns its run id."""
    run_id = sorted(p.name for p in (results / "runs").iterdir() if not p.name.startswith("."))[0]
    folder = results / "runs" / run_id
    if how.startswith("truncated "):
        name = {"metrics": "metrics.parquet", "run.json": "run.json",
                "weights": "weights.safetensors"}[how.split()[1]]
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    elif how.startswith("deleted "):
        (folder / {"metrics": "metrics.parquet", "config": "config.gin",
                   "weights": "weights.safetensors"}[how.split()[1]]).unlink()
    elif how in RECORD_DAMAGES:
        field, value = RECORD_DAMAGES[how]
        record = json.loads((folder / "run.json").read_text())
        (folder / "run.json").write_text(json.dumps({**record, field: value}))
    return run_id


DAMAGES = ["truncated metrics", "deleted metrics", "truncated run.json", "deleted config",
           "truncated weights", "deleted weights", *RECORD_DAMAGES]
#: the damages whose folder the report is also checked to name (the report draws every figure)
REPORTED_DAMAGES = ("truncated metrics", "truncated weights", "seed as text")


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_run_folder_is_named_listed_and_not_done(
        results: Path, matrix: Path, tmp_path: Path, how: str,
        capsys: pytest.CaptureFixture) -> None:
    damaged = _damage(results, how)
    healthy = next(r for r in os.listdir(results / "runs") if r != damaged and r[0] != ".")
    capsys.readouterr()
    assert bench_cli("list", str(results)) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if damaged in line)
    assert "damaged" in line
    named = f"'{RECORD_DAMAGES[how][0]}'" if how in RECORD_DAMAGES else how.split()[1][:7]
    assert named in line  # the file, or the run.json field, that is wrong
    # collect refuses to drop the done run's rows (one line, exit 2) instead of crashing
    assert bench_cli("collect", str(results)) == 2
    assert "would lose their rows" in one_line_error(capsys)
    if how in REPORTED_DAMAGES:  # the report draws every figure: one file and one field suffice
        assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 0
        cells = (tmp_path / "report" / "tables" / "cells.md").read_text()
        assert "damaged" in next(line for line in cells.splitlines() if damaged in line)
    assert bench_cli("run", str(matrix), "--results", str(results), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "to run" in next(line for line in out.splitlines() if line.startswith(damaged))
    assert next(line for line in out.splitlines() if line.startswith(healthy)).endswith(" done")


@pytest.mark.parametrize("how", ["truncated metrics", "truncated run.json", "truncated weights",
                                 "finished as number"])
def test_run_re_runs_a_damaged_cell_and_leaves_the_others(
        results: Path, matrix: Path, how: str) -> None:
    damaged = _damage(results, how)
    healthy = next(r for r in os.listdir(results / "runs") if r != damaged and r[0] != ".")
    stamp = (results / "runs" / healthy / "run.json").stat().st_mtime_ns
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    record = json.loads((results / "runs" / damaged / "run.json").read_text())
    assert record["status"] == Status.DONE
    assert is_done(results, damaged, record["key"])
    from safetensors import safe_open

    with safe_open(str(results / "runs" / damaged / "weights.safetensors"), "np") as weights:
        assert list(weights.keys())  # re-run: whole weights again
    assert (results / "runs" / healthy / "run.json").stat().st_mtime_ns == stamp
    assert set(pd.read_parquet(results / "results.parquet")["run_id"]) == {damaged, healthy}


def test_non_finite_evaluation_is_diverged_and_not_cached(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One step at lr 1e30: the training loss of that step is finite, the trained model is not."""
    matrix = write_matrix(tmp_path, ["plain"], extra=[
        "bench.run.Experiment.lr = 1e30", "bench.tasks.alignment1d.Alignment1D.n_train = 32"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    (record,) = run_records(results).values()
    assert record["status"] == Status.DIVERGED and "non-finite" in record["reason"]
    assert not is_done(results, record["run_id"], record["key"])
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 0


NAN_METRIC = """
import gin, torch
from bench.metrics import Metric

@gin.configurable(module="nan_metric")
class NotANumber(Metric):
    name = "nan_metric"
    def __call__(self, trace):
        return torch.full((trace.distance.shape[0],), float("nan"), dtype=torch.float64)
"""


def test_a_nan_test_metric_is_diverged(tmp_path: Path, plugin_dir: Path) -> None:
    (plugin_dir / "nan_metric.py").write_text(NAN_METRIC)
    task = plugin_dir / "task.gin"
    task.write_text("include 'tasks/alignment1d_nonlinear.gin'\nimport nan_metric\n"
                    "bench.tasks.alignment1d.Alignment1D.metrics = "
                    "[@bench.metrics.Distance(), @nan_metric.NotANumber()]\n")
    matrix = write_matrix(tmp_path, ["plain"], tasks=[str(task)])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    (record,) = run_records(results).values()
    assert record["status"] == Status.DIVERGED
    assert "nan_metric" in record["reason"] and "non-finite" in record["reason"]
