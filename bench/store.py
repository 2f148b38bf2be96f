"""The results store: one folder per run, atomic writes, resume, the tidy table.

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
start. A run counts as finished only when its `run.json` says `done` with the same cache key; failed
and diverged runs are kept for inspection but re-run next time.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from bench.schema import COLUMNS, Status

#: the columns of `runs.parquet`, read from each run.json (plus `metric_directions`, as JSON text)
RUN_FIELDS = ("run_id", "task", "model", "objective", "seed", "scale", "status", "reason", "device",
              "device_name", "wall_time_s", "step_time_s", "threads", "cpu", "python", "torch",
              "package_version", "git_sha", "key", "finished", "family")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as parquet (or CSV for a `.csv` path) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    try:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def runs_dir(results: Path) -> Path:
    return Path(results) / "runs"


def read_run(results: Path, run_id: str) -> dict | None:
    """The run's `run.json`, or None when it never finished writing."""
    path = runs_dir(results) / run_id / "run.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_done(results: Path, run_id: str, key: str) -> bool:
    """True when the run finished successfully with the same cache key (resume skips it)."""
    record = read_run(results, run_id)
    return bool(record) and record.get("status") == Status.DONE and record.get("key") == key


class RunWriter:
    """Stages one run's files and publishes them atomically.

    Usage: `w = RunWriter(results, run_id)`; `w.write_text(name, text)`; `w.write_metrics(rows)`;
    `w.publish(record)` (writes run.json last, then renames the folder into place).
    """

    def __init__(self, results: Path, run_id: str) -> None:
        self.final = runs_dir(results) / run_id
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.stage = self.final.parent / f".{run_id}.staging-{uuid.uuid4().hex[:8]}"
        self.stage.mkdir()

    def write_text(self, name: str, text: str) -> None:
        atomic_write_text(self.stage / name, text)

    def write_metrics(self, rows: Iterable[Mapping[str, object]]) -> None:
        frame = pd.DataFrame(list(rows), columns=COLUMNS)
        atomic_write_frame(frame.astype({"seed": "int64", "step": "int64", "value": "float64"}),
                           self.stage / "metrics.parquet")

    def publish(self, record: Mapping[str, object]) -> Path:
        atomic_write_text(self.stage / "run.json", json.dumps(record, indent=2, default=str) + "\n")
        if self.final.exists():  # an earlier failed/diverged attempt: replaced by this one
            old = self.final.parent / f".{self.final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(self.final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(self.stage, self.final)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)


def record_status(results: Path, cell, status: Status, reason: str) -> None:
    """Publish a run.json without metrics for a cell that never ran to the end in a worker: an
    incompatible (`skipped`) cell, or one whose worker process died (`failed`). Idempotent."""
    previous = read_run(results, cell.run_id)
    if previous and previous.get("status") == status and previous.get("key") == cell.key \
            and previous.get("reason") == reason:
        return
    record = {k: v for k, v in cell.to_dict().items() if k not in ("config_text", "results")}
    record.update(status=status, reason=reason, finished=datetime.now(timezone.utc).isoformat())
    writer = RunWriter(results, cell.run_id)
    writer.write_text("config.gin", cell.config_text)
    writer.publish(record)


def clean_staging(results: Path) -> int:
    """Remove staging folders left by killed workers; returns how many were removed."""
    folder = runs_dir(results)
    stale = [p for p in folder.glob(".*") if p.is_dir()] if folder.exists() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def collect(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild `results.parquet`/`.csv` and `runs.parquet`/`.csv` from the run folders.

    Returns (metrics, runs): one row per run, and the tidy metrics of every run with a metrics
    file. When a config changed, the old run folder (other cache key, same task, model, objective
    and seed) stays on disk; only the most recently finished one counts, the others are listed
    with status `superseded` and their metrics are left out.
    """
    results = Path(results)
    records, frames = [], []
    folder = runs_dir(results)
    for run in sorted(folder.iterdir()) if folder.exists() else []:
        if run.name.startswith(".") or not (run / "run.json").exists():
            continue
        record = json.loads((run / "run.json").read_text())
        row = {k: record.get(k) for k in RUN_FIELDS}
        row["metric_directions"] = json.dumps(record.get("metric_directions") or {})
        records.append(row)
        if (run / "metrics.parquet").exists():
            frames.append(pd.read_parquet(run / "metrics.parquet"))
    runs = pd.DataFrame(records)
    if not runs.empty:  # a changed config leaves the old run beside the new one: newest wins
        order = runs.sort_values("finished", na_position="first", kind="stable")
        stale = order.duplicated(["task", "model", "objective", "seed"], keep="last")
        runs.loc[stale[stale].index, "status"] = str(Status.SUPERSEDED)
        live = set(runs.loc[runs.status != Status.SUPERSEDED, "run_id"])
        frames = [f for f in frames if f.empty or f["run_id"].iloc[0] in live]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    for frame, name in ((metrics, "results"), (runs, "runs")):
        atomic_write_frame(frame, results / f"{name}.parquet")
        atomic_write_frame(frame, results / f"{name}.csv")
    return metrics, runs
