"""The vocabulary shared by the runner, the store and the report: phases, statuses, directions.

Every metric row carries a `Phase`, every run a `Status`, every metric name a `Direction`. They are
`StrEnum`s, so they compare equal to (and are written to parquet, CSV and JSON as) their plain
string values: `Phase.TEST == "test"`, and a table read back from disk needs no conversion.

The tidy metrics table has the columns `COLUMNS`; a run's `run.json` records the direction of each
metric it wrote under `metric_directions` (name -> "min" | "max" | "none"), which is what reports use
to pick the best value. Nothing is inferred from a metric's name.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import get_args, get_type_hints


class Phase(StrEnum):
    """When a metric row was measured (the `phase` column of the metrics table).

    TRAIN: one row per epoch and training metric (`step` = epoch).
    VAL / VAL_ITER: the validation split, final value / per solver iteration (reserved for tuning).
    TEST / TEST_ITER: the test split, final value (`step` = last iteration) / per solver iteration.
    LANDSCAPE: the loss-landscape diagnostic around w* on the first test examples.
    """

    TRAIN = "train"
    VAL = "val"
    VAL_ITER = "val_iter"
    TEST = "test"
    TEST_ITER = "test_iter"
    LANDSCAPE = "landscape"


class Status(StrEnum):
    """Outcome of one run (the `status` field of `run.json` and of the runs table).

    DONE: trained and evaluated, every value finite; the only status a resume skips.
    FAILED: raised, crashed or timed out (`reason` says which); re-run next time.
    DIVERGED: a non-finite loss or evaluation value; re-run next time.
    SKIPPED: the task, model and objective cannot run together (`reason` says why).
    SUPERSEDED: only in the runs table: an older run of the same cell under another config.
    DAMAGED: only in the runs table and `list`: the run folder is unreadable or incomplete
        (`reason` names the file); its metrics are left out and `run` runs the cell again.
    """

    DONE = "done"
    FAILED = "failed"
    DIVERGED = "diverged"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"
    DAMAGED = "damaged"


class Direction(StrEnum):
    """Which value of a metric is better: MIN, MAX, or NONE (a diagnostic with no better side)."""

    MIN = "min"
    MAX = "max"
    NONE = "none"


#: columns of every `metrics.parquet` and of `results.parquet`, in this order
COLUMNS = ["run_id", "task", "model", "objective", "seed", "phase", "step", "metric", "value"]


#: the statuses a run.json may hold (SUPERSEDED and DAMAGED exist only in the tables)
RECORDED = (Status.DONE, Status.FAILED, Status.DIVERGED, Status.SKIPPED)


@dataclass(frozen=True)
class RunRecord:
    """The typed fields of a `run.json` (others may be present and are not checked). The fields
    without a default are required; `None` is allowed only where the type says so."""

    status: str
    task: str
    model: str
    objective: str
    seed: int
    key: str = ""
    run_id: str = ""
    scale: str = ""
    reason: str = ""
    family: str = ""
    parent: str = ""
    config_id: str = ""
    train_key: str = ""
    eval_key: str = ""
    device: str = ""
    device_name: str | None = None
    finished: str = ""
    started: str = ""
    wall_time_s: float | None = None
    step_time_s: float | None = None
    threads: int | None = None
    metric_directions: dict | None = None
    #: the (task, model)'s facts (`bench.tasks.facts.RunFacts`); absent in older runs
    facts: dict | None = None
    package_version: str | None = None
    git_sha: str | None = None


def _fits(value: object, annotation: object) -> bool:
    if value is None:
        return type(None) in get_args(annotation)
    kinds = tuple(t for t in (get_args(annotation) or (annotation,)) if t is not type(None))
    if float in kinds:
        kinds += (int,)
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def record_problem(record: object) -> str:
    """'' when `record` (a parsed run.json) fits `RunRecord` and its status is one a run.json may
    hold, else what is wrong, naming the field."""
    if not isinstance(record, dict):
        return f"not a run record (a JSON {type(record).__name__}, expected an object)"
    for name, annotation in get_type_hints(RunRecord).items():
        if name not in record:
            if fields_required().get(name):
                return f"field {name!r} is missing"
            continue
        if not _fits(record[name], annotation):
            return (f"field {name!r} is {record[name]!r} ({type(record[name]).__name__}), "
                    f"expected {getattr(annotation, '__name__', str(annotation))}")
    if record["status"] not in RECORDED:
        return (f"field 'status' is {record['status']!r}, expected one of "
                f"{', '.join(RECORDED)}")
    return ""


def fields_required() -> dict[str, bool]:
    """RunRecord field -> whether run.json must hold it (no default)."""
    return {f.name: f.default is MISSING and f.default_factory is MISSING for f in fields(RunRecord)}
