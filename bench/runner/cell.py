"""`Cell`: one (task, model, objective, seed) point of a matrix, as plain data a worker can receive."""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: where cells can run (`bench.runner.executors`); here so that the argument checker needs no torch
EXECUTORS = ("sequential", "local", "submitit", "ray")
MAX_SEED = 2**32 - 1  # numpy's legacy seeding accepts [0, 2**32 - 1]


@dataclass(frozen=True)
class Cell:
    """Everything a worker needs to run one cell; picklable and JSON-able.

    run_id: folder name, `<task>-<model>-<objective>-s<seed>-<train_key[:8]>`.
    family: the task family (`Task.family` of the built cell), e.g. `alignment1d`.
    key: cache key, sha256 of `train_key` and `eval_key` (`bench.runner.identity`): a run is done when
        its folder holds this key.
    train_key: sha256 of the config's training statements (normal form), the seed, the version
        and a parent's training key; eval_key: sha256 of its evaluation-only statements (metrics,
        landscape settings, evaluation batch size). A done run with the same `train_key` but
        another `eval_key` is re-evaluated from its saved weights, not retrained.
    evaluate_only: re-evaluate the weights saved in this cell's run folder instead of training
        (set by the runner, never by a matrix).
    config_text: the requested gin config with includes inlined (what the worker parses).
    files, bindings: where that text came from (for the record).
    results: the results folder (a string, so the cell pickles anywhere).
    skip_reason: non-empty when the combination is incompatible (never run).
    progress: show a per-epoch progress bar (sequential runs on a terminal only).
    timeout: seconds after which the executor kills the cell and records it failed (0: never).
    Neither `device`, `threads`, `progress` nor `timeout` is part of the cache key: they change
    where and how fast a cell runs, not what it computes (threads change float reductions in the
    last digits; `threads` is recorded in run.json and shown by `list`).
    parent: run_id of the cell whose final weights this one starts from (`Experiment.init_from`;
        same task, model and seed, run first); '' for a cell trained from scratch.
    config_id: the config's identity without the seed (`bench.runner.pooling.config_id`): runs that a
        table row may pool share it.
    eval_split: '' (any) or the only split the cell may evaluate: 'val' for tuning trials, whose
        run fails rather than record a test metric.
    """

    run_id: str
    key: str
    task: str
    model: str
    objective: str
    seed: int
    scale: str
    config_text: str
    results: str
    family: str = ""
    files: tuple[str, ...] = ()
    bindings: tuple[str, ...] = ()
    device: str = "auto"
    threads: int = 0
    skip_reason: str = ""
    progress: bool = False
    timeout: float = 0.0
    parent: str = ""
    eval_split: str = ""
    train_key: str = ""
    eval_key: str = ""
    evaluate_only: bool = False
    config_id: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
