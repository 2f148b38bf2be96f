"""The results store: one folder per run, atomic writes, resume, damaged-folder detection.

Layout of a results folder:

    <results>/runs/<run_id>/run.json          status (`bench.schema.Status`), identity, family,
                                              provenance, `metric_directions`
    <results>/runs/<run_id>/config.gin        the requested config (includes inlined)
    <results>/runs/<run_id>/operative.gin     gin.operative_config_str() in the worker
    <results>/runs/<run_id>/metrics.parquet   tidy rows (`bench.schema.COLUMNS`), phase a `Phase`
    <results>/results.parquet (+ .csv)        every run's metrics, rebuilt from the run folders
    <results>/runs.parquet (+ .csv)           one row per run (RUN_FIELDS): status, family, timings

A worker writes a run into a hidden staging folder and renames it into place when it ends, so a
run folder is always complete; a killed worker leaves only a staging folder, removed on the next
start. A leading "." marks staging and temporary folders, and no run id starts with one
(`RunWriter` refuses such an id, `bench.runner.matrix` an axis file named so). Publishing refuses when the staging folder has gone (another driver cleaned it up) or when a
`done` run lacks one of its files (`IncompleteRun`). A run counts as finished only when its
`run.json` says `done` with the same cache key and its files are all readable; a folder that is
not (`inspect_run` says why) is *damaged*: listed as such and re-run. Failed and diverged runs are
kept for inspection but re-run next time. Files are written with the mode the user's umask gives
(0644 under the usual 022). The tables are built by `bench.runner.result_tables`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bench.schema import COLUMNS, Status, record_problem

if TYPE_CHECKING:  # pandas and pyarrow are imported where they are used: a fully cached `run`
    import pandas as pd  # (`bench.runner.cached_cells`) reads run folders without pandas

#: the columns of `runs.parquet`, read from each run.json (plus `metric_directions`, as JSON text)
RUN_FIELDS = ("run_id", "task", "model", "objective", "seed", "scale", "status", "reason", "device",
              "device_name", "wall_time_s", "step_time_s", "threads", "cpu", "python", "torch",
              "package_version", "git_sha", "key", "finished", "family", "config_id",
              "train_key")
#: the trained weights of a done run (`bench.runner.checkpoint.FILENAME`)
WEIGHTS = "weights.safetensors"
#: files a run folder holds besides run.json, by status (metrics.parquet and weights.safetensors
#: must also be readable: a parquet footer, a safetensors header that accounts for the file's size)
REQUIRED_FILES = {Status.DONE: ("config.gin", "operative.gin", "metrics.parquet", WEIGHTS)}


class IncompleteRun(RuntimeError):
    """A run folder cannot be published: its staging folder is gone or a file is missing."""


def file_mode() -> int:
    """Mode of a new file under the current umask (0o666 & ~umask), as `open()` would give it."""
    try:  # Linux >= 4.7 reports the umask without changing it (os.umask is process-wide)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str, make_parents: bool = True) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), file_mode())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_frame(frame: pd.DataFrame, path: Path, make_parents: bool = True) -> None:
    """Write a DataFrame as parquet (or CSV for a `.csv` path) atomically."""
    atomic_write_frames({path: frame}, make_parents)


def atomic_write_frames(frames: Mapping[Path, pd.DataFrame], make_parents: bool = True) -> None:
    """Write several DataFrames (parquet, or CSV for a `.csv` path) as one unit: every one goes to
    a temporary file in its folder first, and only when all are written are they renamed into
    place, so a failure while writing (a full disk) leaves every old file as it was."""
    staged = []
    try:
        for path, frame in frames.items():
            if make_parents:
                path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}"
            staged.append((tmp, path))
            if path.suffix == ".csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
            os.chmod(tmp, file_mode())
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def runs_dir(results: Path) -> Path:
    return Path(results) / "runs"


@dataclass(frozen=True)
class RunState:
    """What a run folder holds: its record (None when run.json is unreadable) and, for a damaged
    folder, what is wrong with it (`problem`, naming the file)."""

    folder: Path
    record: dict | None
    problem: str = ""

    @property
    def damaged(self) -> bool:
        return bool(self.problem)

    def is_done(self, key: str) -> bool:
        """Finished successfully with cache key `key`, its folder complete (resume skips it)."""
        return (not self.damaged and self.record.get("status") == Status.DONE
                and self.record.get("key") == key)

    def can_reevaluate(self, train_key: str) -> bool:
        """Finished successfully with training key `train_key` and its weights saved: a cell that
        differs from it only in evaluation settings re-evaluates these weights, never retrains."""
        return (bool(train_key) and not self.damaged
                and self.record.get("status") == Status.DONE
                and self.record.get("train_key") == train_key
                and (self.folder / WEIGHTS).is_file())


def missing_files(folder: Path, status: str) -> str:
    """'' when `folder` holds every file a run with `status` needs, else what is missing/unreadable."""
    import pyarrow.parquet as pq

    for name in REQUIRED_FILES.get(status, ()):
        path = folder / name
        if not path.is_file():
            return f"{path}: missing"
        try:
            if path.suffix == ".parquet":
                pq.ParquetFile(path).metadata  # noqa: B018 - reads the footer: catches truncation
            elif path.suffix == ".safetensors":
                check_safetensors(path)
        except Exception as err:  # noqa: BLE001 - any unreadable file is damage
            return f"{path}: unreadable ({type(err).__name__}: {err})"
    return ""


def check_safetensors(path: Path) -> None:
    """Raise `ValueError` unless `path` is a whole safetensors file: an 8-byte header length, a
    JSON header, and exactly as many data bytes as the header's tensors end at (reads the header
    only)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        if size < 8 or length > size - 8:
            raise ValueError(f"header length {length} does not fit a file of {size} bytes")
        header = json.loads(handle.read(length))
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    if 8 + length + max(ends, default=0) != size:
        raise ValueError(f"the tensors need {8 + length + max(ends, default=0)} bytes, the file "
                         f"has {size} (truncated?)")


def inspect_run(folder: Path) -> RunState:
    """Read `folder`'s run.json and check its files; never raises for a damaged folder."""
    path = folder / "run.json"
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return RunState(folder, None, f"{path}: missing")
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return RunState(folder, None, f"{path}: unreadable ({type(err).__name__}: {err})")
    problem = record_problem(record)
    if problem:
        return RunState(folder, None, f"{path}: {problem}")
    return RunState(folder, record, missing_files(folder, record["status"]))


def read_run(results: Path, run_id: str) -> dict | None:
    """The run's `run.json`, or None when there is none or it is unreadable."""
    folder = runs_dir(results) / run_id
    return inspect_run(folder).record if folder.is_dir() else None


def is_done(results: Path, run_id: str, key: str) -> bool:
    """True when the run finished successfully with the same cache key and its folder is complete
    (resume skips it)."""
    folder = runs_dir(results) / run_id
    return folder.is_dir() and inspect_run(folder).is_done(key)


class RunWriter:
    """Stages one run's files and publishes them atomically.

    Usage: `w = RunWriter(results, run_id)`; `w.write_text(name, text)`; `w.write_metrics(rows)`;
    `w.publish(record)` (checks the files, writes run.json last, then renames the folder into
    place). Every write refuses (`IncompleteRun`) once the staging folder has been removed.
    """

    def __init__(self, results: Path, run_id: str) -> None:
        if not run_id or run_id.startswith(".") or "/" in run_id:  # "." marks staging folders
            raise ValueError(f"run id {run_id!r}: must be non-empty, without '/', and not start "
                             "with '.' (run folders starting with '.' are staging folders)")
        self.final = runs_dir(results) / run_id
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.stage = self.final.parent / f".{run_id}.staging-{uuid.uuid4().hex[:8]}"
        self.stage.mkdir()

    def _check_stage(self) -> None:
        if not self.stage.is_dir():
            raise IncompleteRun(f"staging folder {self.stage} is gone (removed by another driver?);"
                                " not publishing")

    def write_text(self, name: str, text: str) -> None:
        self._check_stage()
        atomic_write_text(self.stage / name, text, make_parents=False)

    def write_metrics(self, rows: Iterable[Mapping[str, object]]) -> None:
        import pandas as pd

        self._check_stage()
        frame = pd.DataFrame(list(rows), columns=COLUMNS)
        atomic_write_frame(frame.astype({"seed": "int64", "step": "int64", "value": "float64"}),
                           self.stage / "metrics.parquet", make_parents=False)

    def publish(self, record: Mapping[str, object]) -> Path:
        self._check_stage()
        problem = missing_files(self.stage, str(record.get("status")))
        if problem:
            raise IncompleteRun(f"run {self.final.name} is {record.get('status')} but {problem}")
        atomic_write_text(self.stage / "run.json", json.dumps(record, indent=2, default=str) + "\n",
                          make_parents=False)
        if self.final.exists():  # an earlier failed/diverged/damaged attempt: replaced by this one
            old = self.final.parent / f".{self.final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(self.stage, self.final)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def has_status(results: Path, cell, status: Status, reason: str) -> bool:
    """True when `cell`'s run folder records `status` with the cell's key and `reason`."""
    previous = read_run(results, cell.run_id)
    return bool(previous) and previous.get("status") == status \
        and previous.get("key") == cell.key and previous.get("reason") == reason


def record_status(results: Path, cell, status: Status, reason: str) -> None:
    """Publish a run.json without metrics for a cell that never ran to the end in a worker: an
    incompatible (`skipped`) cell, or one whose worker process died or timed out (`failed`).
    Idempotent."""
    if has_status(results, cell, status, reason):
        return
    record = {k: v for k, v in cell.to_dict().items() if k not in ("config_text", "results")}
    record.update(status=status, reason=reason, finished=datetime.now(timezone.utc).isoformat())
    writer = RunWriter(results, cell.run_id)
    writer.write_text("config.gin", cell.config_text)
    writer.publish(record)


def tables_current(results: Path) -> bool:
    """True when the four tables (`results.*`, `runs.*`, written by `bench.runner.result_tables`) exist
    and were written after every change to the run folders (a run published, replaced or removed:
    the `runs/` folder's, each run folder's and each run.json's modification time; strictly
    after, so a change in the same clock tick counts as newer)."""
    paths = [Path(results) / f"{name}.{suffix}" for name in ("results", "runs")
             for suffix in ("parquet", "csv")]
    if not all(p.is_file() for p in paths):
        return False
    folder = runs_dir(results)
    changes = [folder] + [p for run in folder.iterdir() for p in (run, run / "run.json")
                          if p.exists()] if folder.is_dir() else []
    return min(p.stat().st_mtime_ns for p in paths) > max(
        (p.stat().st_mtime_ns for p in changes), default=0)


def clean_staging(results: Path, run_id: str = "") -> int:
    """Remove staging folders left by killed workers (only `run_id`'s when given); returns how
    many were removed. Call it only while holding the results folder's lock."""
    folder = runs_dir(results)
    pattern = f".{run_id}.staging-*" if run_id else ".*"
    stale = [p for p in folder.glob(pattern) if p.is_dir()] if folder.exists() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
