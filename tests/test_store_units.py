"""bench.runner.store piece by piece, without running a matrix: run folders, resume records, the
superseded rule of collect, and a failed cell's record."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from bench.runner import result_tables, store
from bench.runner.matrix import load_matrix
from tests.conftest import write_weights

#: the required fields of a run.json (`bench.schema.RunRecord`)
RECORD = {"task": "t", "model": "m", "objective": "o", "seed": 0}
ROW = {"run_id": "r1", "task": "t", "model": "m", "objective": "o", "seed": 0, "phase": "test",
       "step": 0, "metric": "loss", "value": 1.5}


def publish(results: Path, run_id: str, finished: str, status: str = "done",
            rows: list[dict] | None = None, seed: int = 0, key: str = "k") -> Path:
    writer = store.RunWriter(results, run_id)
    writer.write_text("config.gin", "a = 1\n")
    if status == "done":  # a done run folder is complete (publish checks it)
        writer.write_text("operative.gin", "a = 1\n")
        write_weights(writer.stage / "weights.safetensors")
        rows = rows or []
    if rows is not None:
        writer.write_metrics(rows)
    return writer.publish({"run_id": run_id, "task": "t", "model": "m", "objective": "o",
                           "seed": seed, "status": status, "key": key, "finished": finished,
                           "metric_directions": {"loss": "min"}})


def test_run_writer_publishes_a_complete_folder(tmp_path: Path) -> None:
    folder = publish(tmp_path, "r1", "2026-01-01", rows=[ROW])
    assert folder == tmp_path / "runs" / "r1"
    assert sorted(p.name for p in folder.iterdir()) == ["config.gin", "metrics.parquet",
                                                       "operative.gin", "run.json",
                                                       "weights.safetensors"]
    assert (folder / "config.gin").read_text() == "a = 1\n"
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "done" and record["key"] == "k"
    metrics = pd.read_parquet(folder / "metrics.parquet")
    assert list(metrics.columns) == store.COLUMNS
    assert metrics.dtypes["seed"] == "int64" and metrics.dtypes["step"] == "int64"
    assert metrics.dtypes["value"] == "float64" and metrics["value"].tolist() == [1.5]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r1"]  # no staging left


def test_republishing_replaces_the_old_attempt(tmp_path: Path) -> None:
    publish(tmp_path, "r1", "2026-01-01", status="failed", rows=[ROW])
    folder = publish(tmp_path, "r1", "2026-01-02")
    assert store.read_run(tmp_path, "r1")["status"] == "done"
    assert pd.read_parquet(folder / "metrics.parquet").empty  # nothing of the old attempt
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r1"]


def test_is_done_needs_status_done_and_the_same_key(tmp_path: Path) -> None:
    assert not store.is_done(tmp_path, "r1", "k")  # never written
    publish(tmp_path, "r1", "2026-01-01", status="failed")
    assert not store.is_done(tmp_path, "r1", "k")
    publish(tmp_path, "r1", "2026-01-02")
    assert store.is_done(tmp_path, "r1", "k")
    assert not store.is_done(tmp_path, "r1", "other")
    (tmp_path / "runs" / "r1" / "run.json").write_text("{torn")
    assert store.read_run(tmp_path, "r1") is None and not store.is_done(tmp_path, "r1", "k")


def test_discard_and_clean_staging(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path, "r1")
    writer.write_text("config.gin", "x")
    assert writer.stage.is_dir() and writer.stage.name.startswith(".r1.staging-")
    writer.discard()
    assert not writer.stage.exists()
    store.RunWriter(tmp_path, "r2")
    store.RunWriter(tmp_path, "r3")
    publish(tmp_path, "r4", "2026-01-01")
    assert store.clean_staging(tmp_path) == 2
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r4"]
    assert store.clean_staging(tmp_path / "nowhere") == 0


def test_collect_keeps_the_newest_run_of_a_cell(tmp_path: Path) -> None:
    old_rows = [dict(ROW, run_id="old", value=1.0)]
    new_rows = [dict(ROW, run_id="new", value=2.0)]
    other = [dict(ROW, run_id="other", seed=1, value=3.0)]
    publish(tmp_path, "old", "2026-01-01T00:00", rows=old_rows)
    publish(tmp_path, "new", "2026-01-02T00:00", rows=new_rows, key="k2")
    publish(tmp_path, "other", "2026-01-01T00:00", rows=other, seed=1)
    (tmp_path / "runs" / "empty").mkdir()  # a folder without run.json: listed as damaged
    metrics, runs = result_tables.collect(tmp_path)
    status = dict(zip(runs.run_id, runs.status))
    assert status == {"new": "done", "old": "superseded", "other": "done", "empty": "damaged"}
    assert sorted(metrics["value"]) == [2.0, 3.0]
    assert json.loads(runs.set_index("run_id").loc["new", "metric_directions"]) == {"loss": "min"}
    for name in ("results", "runs"):
        assert (tmp_path / f"{name}.parquet").is_file() and (tmp_path / f"{name}.csv").is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results.parquet"), metrics)
    assert pd.read_csv(tmp_path / "runs.csv")["status"].tolist() == list(runs.status)


def test_collect_of_an_empty_folder(tmp_path: Path) -> None:
    metrics, runs = result_tables.collect(tmp_path)
    assert metrics.empty and list(metrics.columns) == store.COLUMNS and runs.empty


def test_record_status_publishes_once(tmp_path: Path) -> None:
    cell = SimpleNamespace(run_id="c1", key="k", config_text="b = 2\n",
                           to_dict=lambda: {"run_id": "c1", "key": "k", **RECORD,
                                            "config_text": "b = 2\n", "results": "x"})
    store.record_status(tmp_path, cell, "skipped", "no reason")
    record = store.read_run(tmp_path, "c1")
    assert record["status"] == "skipped" and record["reason"] == "no reason"
    assert record["key"] == "k" and "config_text" not in record and "results" not in record
    assert (tmp_path / "runs" / "c1" / "config.gin").read_text() == "b = 2\n"
    first = record["finished"]
    store.record_status(tmp_path, cell, "skipped", "no reason")  # idempotent: not rewritten
    assert store.read_run(tmp_path, "c1")["finished"] == first
    store.record_status(tmp_path, cell, "failed", "worker died")
    assert store.read_run(tmp_path, "c1")["status"] == "failed"


def test_load_matrix_expands_parts() -> None:
    """Every part the smoke matrix lists is loaded, in order, with its own family (whatever
    families the shipped matrix holds: the test does not pin them)."""
    from bench.runner.recorded_facts import family_of

    parts = load_matrix(Path("gin/matrices/smoke.gin"))
    listed = re.findall(r"'(matrices/smoke/[^']+\.gin)'", Path("gin/matrices/smoke.gin").read_text())
    assert len(parts) == len(listed) >= 1
    families = [{family_of(t) for t in p.tasks} for p in parts]
    assert all(len(f) == 1 and "" not in f for f in families)  # one known family per part
    assert len(set().union(*families)) == len(parts)
    assert all(p.scale == "smoke" and p.objectives for p in parts)


@pytest.mark.parametrize("name", ["smoke/alignment1d.gin"])
def test_load_matrix_of_a_single_part(name: str) -> None:
    (part,) = load_matrix(Path("gin/matrices") / name)
    assert part.tasks and not part.parts


def test_restrict_tasks_keeps_each_part_to_its_own_family() -> None:
    from bench.runner.config import ConfigError
    from bench.runner.matrix import restrict_tasks
    from bench.runner.recorded_facts import family_of

    parts = load_matrix(Path("gin/matrices/smoke.gin"))
    first, last = parts[0], parts[-1]
    kept = restrict_tasks(parts, [first.tasks[0], last.tasks[-1]], Path("m.gin"))
    assert [p.tasks for p in kept] == [[first.tasks[0]], [last.tasks[-1]]]
    assert kept[0].models == first.models and kept[1].models == last.models
    with pytest.raises(ConfigError) as info:
        restrict_tasks(parts, ["nope", first.tasks[0], "nope_too"], Path("m.gin"))
    families = ", ".join(sorted({family_of(p.tasks[0]) for p in parts}))
    assert str(info.value) == ("m.gin: --tasks nope, nope_too: no part of this matrix has that "
                               f"task family (families: {families})")


def test_waves_put_parents_first() -> None:
    from bench.runner.cell_runner import waves

    cells = [SimpleNamespace(run_id="child", parent="root", results="r"),
             SimpleNamespace(run_id="root", parent="", results="r"),
             SimpleNamespace(run_id="orphan", parent="elsewhere", results="r")]
    assert [[c.run_id for c in w] for w in waves(cells)] == [["root", "orphan"], ["child"]]
    assert [[c.run_id for c in w] for w in waves(cells[1:])] == [["root", "orphan"]]


def test_discard_of_a_missing_stage_is_quiet(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path, "r1")
    writer.discard()
    writer.discard()  # already gone: no error
    assert not writer.stage.exists()


# --- file modes, temporary names, damaged folders, publish checks -------------------------------

@pytest.fixture
def umask_036():
    """The process umask set to 0o036 for one test (os.umask is process-wide: restored after):
    new files get 0o666 & ~0o036 = 0o640, not the 0o644 of the usual umask."""
    old = os.umask(0o036)
    try:
        yield
    finally:
        os.umask(old)


def test_file_mode_reads_the_umask_without_changing_it(umask_036, monkeypatch) -> None:
    def no_umask(mask):  # /proc/self/status reports it: no process-wide os.umask call needed
        raise AssertionError("os.umask called")

    monkeypatch.setattr(store.os, "umask", no_umask)
    assert store.file_mode() == 0o640  # 0o666 & ~0o036


def test_file_mode_without_proc_falls_back_to_os_umask(umask_036, monkeypatch) -> None:
    real_path = store.Path

    def path(*args):
        if str(args[0]).startswith("/proc"):
            raise OSError("no /proc here")
        return real_path(*args)

    monkeypatch.setattr(store, "Path", path)
    assert store.file_mode() == 0o640
    monkeypatch.undo()
    assert os.umask(0o036) == 0o036  # the fallback put the umask back


def test_written_files_get_the_umask_mode_and_a_hidden_temporary_name(
        umask_036, tmp_path: Path, monkeypatch) -> None:
    renamed: list[str] = []
    real_replace = os.replace

    def replace(src, dst):
        renamed.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    store.atomic_write_text(tmp_path / "a" / "b" / "run.json", "{}")  # parents made
    store.atomic_write_frame(pd.DataFrame({"a": [1]}), tmp_path / "c" / "d" / "t.parquet")
    store.atomic_write_frame(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    for path in (tmp_path / "a/b/run.json", tmp_path / "c/d/t.parquet", tmp_path / "t.csv"):
        assert path.stat().st_mode & 0o777 == 0o640, path
    # temporary files are dot-files in the target's folder (`collect` and `ls` skip them)
    assert [name.split(".")[1] for name in renamed] == ["run", "t", "t"]
    assert all(name.startswith(".") for name in renamed)


def test_atomic_write_text_without_parents_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.atomic_write_text(tmp_path / "nope" / "x.txt", "x", make_parents=False)
    with pytest.raises(OSError):
        store.atomic_write_frame(pd.DataFrame({"a": [1]}), tmp_path / "nope" / "x.csv",
                                 make_parents=False)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_is_written_without_its_index(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]}, index=[7, 8, 9]).iloc[1:]  # not a RangeIndex
    store.atomic_write_frame(frame, tmp_path / "t.parquet")
    store.atomic_write_frame(frame, tmp_path / "t.csv")
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "t.parquet").schema_arrow.names == ["a"]
    assert (tmp_path / "t.csv").read_text() == "a\n2\n3\n"


def test_missing_files_names_the_first_missing_or_unreadable_file(tmp_path: Path) -> None:
    assert store.missing_files(tmp_path, "done") == f"{tmp_path / 'config.gin'}: missing"
    assert store.missing_files(tmp_path, "failed") == ""  # a failed run needs no files
    for name in ("config.gin", "operative.gin"):
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "metrics.parquet").write_bytes(b"PAR1 torn")
    problem = store.missing_files(tmp_path, "done")
    assert problem.startswith(f"{tmp_path / 'metrics.parquet'}: unreadable (Arrow")


@pytest.mark.parametrize("text, problem", [
    (None, "missing"),
    ("{torn", "unreadable (JSONDecodeError: "),
    ('{"key": "k"}', "field 'status' is missing"),
    ('"status"', "not a run record"),
    ("[1, 2]", "not a run record"),
])
def test_inspect_run_says_what_is_wrong(tmp_path: Path, text: str | None, problem: str) -> None:
    if text is not None:
        (tmp_path / "run.json").write_text(text)
    state = store.inspect_run(tmp_path)
    assert state.folder == tmp_path and state.record is None and state.damaged
    assert state.problem.startswith(f"{tmp_path / 'run.json'}: {problem}")


def test_inspect_run_of_a_done_record_checks_its_files(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"status": "done", **RECORD}))
    state = store.inspect_run(tmp_path)
    assert state.folder == tmp_path and state.record == {"status": "done", **RECORD}
    assert state.problem == f"{tmp_path / 'config.gin'}: missing"
    (tmp_path / "run.json").write_text(json.dumps({"status": "skipped", **RECORD}))
    assert not store.inspect_run(tmp_path).damaged


def test_publish_refuses_a_done_run_without_its_files(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path / "deep" / "results", "r1")  # parents made
    writer.write_text("config.gin", "a = 1\n")
    with pytest.raises(store.IncompleteRun) as err:
        writer.publish({"status": "done", "key": "k"})
    assert str(err.value) == (f"run r1 is done but {writer.stage / 'operative.gin'}: missing")
    assert not (tmp_path / "deep" / "results" / "runs" / "r1").exists()
    writer.publish({"status": "failed", "key": "k"})  # a failed run is published as it is


def test_run_json_is_indented_and_stringifies_paths(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path, "r1")
    folder = writer.publish({"status": "skipped", "where": tmp_path})
    text = (folder / "run.json").read_text()
    assert text == f'{{\n  "status": "skipped",\n  "where": "{tmp_path}"\n}}\n'


def test_record_status_stamps_utc_time(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    cell = SimpleNamespace(run_id="c1", key="k", config_text="",
                           to_dict=lambda: {"run_id": "c1", "key": "k", **RECORD})
    store.record_status(tmp_path, cell, "skipped", "why")
    finished = datetime.fromisoformat(store.read_run(tmp_path, "c1")["finished"])
    assert finished.utcoffset() == timedelta(0)


def test_clean_staging_of_one_run_leaves_the_others(tmp_path: Path) -> None:
    mine, other = store.RunWriter(tmp_path, "r1"), store.RunWriter(tmp_path, "r2")
    assert store.clean_staging(tmp_path, "r1") == 1
    assert not mine.stage.exists() and other.stage.is_dir()


def test_every_write_refuses_once_the_stage_is_gone(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path, "r1")
    writer.discard()
    expected = f"staging folder {writer.stage} is gone (removed by another driver?); not publishing"
    for write in (lambda: writer.write_text("config.gin", "x"), lambda: writer.write_metrics([]),
                  lambda: writer.publish({"status": "failed"})):
        with pytest.raises(store.IncompleteRun) as err:
            write()
        assert str(err.value) == expected
    assert not writer.stage.exists() and not (tmp_path / "runs" / "r1").exists()


def test_a_write_never_recreates_a_removed_stage(tmp_path: Path, monkeypatch) -> None:
    # even past the check (another driver removes the stage between check and write), the
    # writes do not create the staging folder again
    writer = store.RunWriter(tmp_path, "r1")
    monkeypatch.setattr(writer, "_check_stage", lambda: None)
    writer.discard()
    for write in (lambda: writer.write_text("config.gin", "x"), lambda: writer.write_metrics([]),
                  lambda: writer.publish({"status": "failed"})):
        with pytest.raises(OSError):
            write()
        assert not writer.stage.exists()
