"""`Cell`: one (task, model, objective, seed) point of a matrix, as plain data a worker can receive."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Cell:
    """Everything a worker needs to run one cell; picklable and JSON-able.

    run_id: folder name, `<task>-<model>-<objective>-s<seed>-<key[:8]>`.
    family: the task family (`Task.family` of the built cell), e.g. `alignment1d`.
    key: cache key, sha256 of (config text, seed, package version).
    config_text: the requested gin config with includes inlined (what the worker parses).
    files, bindings: where that text came from (for the record).
    results: the results folder (a string, so the cell pickles anywhere).
    skip_reason: non-empty when the combination is incompatible (never run).
    progress: show a per-epoch progress bar (sequential runs on a terminal only).
    parent: run_id of the cell whose final weights this one starts from (`Experiment.init_from`;
        same task, model and seed, run first); '' for a cell trained from scratch.
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
    parent: str = ""
    eval_split: str = ""

    def to_dict(self) -> dict:
        return asdict(self)
