"""The vocabulary shared by the runner, the store and the report: phases, statuses, directions.

Every metric row carries a `Phase`, every run a `Status`, every metric name a `Direction`. They are
`StrEnum`s, so they compare equal to (and are written to parquet, CSV and JSON as) their plain
string values: `Phase.TEST == "test"`, and a table read back from disk needs no conversion.

The tidy metrics table has the columns `COLUMNS`; a run's `run.json` records the direction of each
metric it wrote under `metric_directions` (name -> "min" | "max" | "none"), which is what reports use
to pick the best value. Nothing is inferred from a metric's name.
"""

from __future__ import annotations

from enum import StrEnum


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
