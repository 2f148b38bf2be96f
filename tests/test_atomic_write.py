"""Atomic writes in bench.runner.store: a failure between writing and renaming leaves the old file
intact and no temporary file behind (an in-place write would leave a torn or new file)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from bench.runner import store
from tests.conftest import write_weights


class Crash(RuntimeError):
    pass


@pytest.fixture
def crash_on_rename(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``os.replace`` raises (after recording its arguments): the process dies between the
    write of the temporary file and its rename."""
    calls: list[tuple[str, str]] = []

    def replace(src, dst):
        calls.append((str(src), str(dst)))
        assert Path(src).exists()  # the new content was fully written before the rename
        raise Crash("killed before rename")

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_atomic_write_text_keeps_the_old_file(tmp_path: Path, crash_on_rename) -> None:
    path = tmp_path / "run.json"
    path.write_text("old")
    with pytest.raises(Crash):
        store.atomic_write_text(path, "new content")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    assert crash_on_rename and crash_on_rename[0][1] == str(path)
    assert Path(crash_on_rename[0][0]).parent == tmp_path  # same folder: rename is atomic


@pytest.mark.parametrize("name", ["results.parquet", "results.csv"])
def test_atomic_write_frame_keeps_the_old_file(tmp_path: Path, crash_on_rename,
                                               name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"old")
    with pytest.raises(Crash):
        store.atomic_write_frame(pd.DataFrame({"a": [1, 2]}), path)
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert crash_on_rename[0][1] == str(path)


def test_atomic_writes_round_trip(tmp_path: Path) -> None:
    store.atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    store.atomic_write_frame(frame, tmp_path / "f.parquet")
    store.atomic_write_frame(frame, tmp_path / "f.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.parquet", "sub"]


def test_a_crashed_publish_leaves_no_run_folder(tmp_path: Path, crash_on_rename) -> None:
    writer = store.RunWriter(tmp_path, "run-1")
    for name in ("config.gin", "operative.gin"):  # a complete done run (written directly: the
        (writer.stage / name).write_text("x = 1\n")  # fixture makes every os.replace crash)
    pd.DataFrame(columns=store.COLUMNS).to_parquet(writer.stage / "metrics.parquet")
    write_weights(writer.stage / "weights.safetensors")
    with pytest.raises(Crash):
        writer.publish({"status": "done", "key": "k"})
    assert not (tmp_path / "runs" / "run-1").exists()
    assert store.read_run(tmp_path, "run-1") is None
    assert not store.is_done(tmp_path, "run-1", "k")
    assert store.clean_staging(tmp_path) == 1  # the staging folder is swept on the next start
    assert list((tmp_path / "runs").iterdir()) == []
