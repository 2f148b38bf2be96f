"""bench.store piece by piece, without running a matrix: run folders, resume records, the
superseded rule of collect, and a failed cell's record."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from bench import result_tables, store
from bench.matrix import load_matrix

ROW = {"run_id": "r1", "task": "t", "model": "m", "objective": "o", "seed": 0, "phase": "test",
       "step": 0, "metric": "loss", "value": 1.5}


def publish(results: Path, run_id: str, finished: str, status: str = "done",
            rows: list[dict] | None = None, seed: int = 0, key: str = "k") -> Path:
    writer = store.RunWriter(results, run_id)
    writer.write_text("config.gin", "a = 1\n")
    if status == "done":  # a done run folder is complete (publish checks it)
        writer.write_text("operative.gin", "a = 1\n")
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
                                                       "operative.gin", "run.json"]
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
                           to_dict=lambda: {"run_id": "c1", "key": "k", "task": "t",
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
    parts = load_matrix(Path("gin/matrices/smoke.gin"))
    assert len(parts) == 4
    assert [p.tasks[0].split("_")[0] for p in parts] == ["alignment1d", "homography",
                                                          "registration", "sequence"]
    assert all(p.scale == "smoke" and p.objectives for p in parts)


@pytest.mark.parametrize("name", ["smoke/alignment1d.gin"])
def test_load_matrix_of_a_single_part(name: str) -> None:
    (part,) = load_matrix(Path("gin/matrices") / name)
    assert part.tasks and not part.parts


def test_restrict_tasks_keeps_each_part_to_its_own_family() -> None:
    from bench.config import ConfigError
    from bench.matrix import restrict_tasks

    parts = load_matrix(Path("gin/matrices/smoke.gin"))
    kept = restrict_tasks(parts, ["alignment1d_same", "sequence_copy"], Path("m.gin"))
    assert [p.tasks for p in kept] == [["alignment1d_same"], ["sequence_copy"]]
    assert kept[0].models == parts[0].models and kept[1].models == parts[3].models
    with pytest.raises(ConfigError) as info:
        restrict_tasks(parts, ["alignment1d_same", "nope"], Path("m.gin"))
    assert str(info.value) == ("m.gin: --tasks nope: no part of this matrix has that task family "
                               "(families: alignment1d, homography, registration, sequence)")


def test_waves_put_parents_first() -> None:
    from bench.matrix import waves

    cells = [SimpleNamespace(run_id="child", parent="root"),
             SimpleNamespace(run_id="root", parent=""),
             SimpleNamespace(run_id="orphan", parent="elsewhere")]
    assert [[c.run_id for c in w] for w in waves(cells)] == [["root", "orphan"], ["child"]]
    assert [[c.run_id for c in w] for w in waves(cells[1:])] == [["root", "orphan"]]


def test_discard_of_a_missing_stage_is_quiet(tmp_path: Path) -> None:
    writer = store.RunWriter(tmp_path, "r1")
    writer.discard()
    writer.discard()  # already gone: no error
    assert not writer.stage.exists()
