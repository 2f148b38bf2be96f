"""The cells of a results folder's finished runs, rebuilt from what each run saved, for
`bench evaluate RESULTS`: re-evaluating their weights after a change of evaluation code (a metric
fixed, a solver's trace extended) without retraining anything."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from bench.runner.cell import Cell
from bench.runner.store import inspect_run, runs_dir
from bench.schema import Status

#: Cell fields that describe where a run ran, not what it is: not taken from the saved record
_PLACE = {"results", "config_text", "progress", "evaluate_only"}


def saved_cells(results: Path) -> list[Cell]:
    """One `evaluate_only` cell per done run folder of `results` (damaged ones are left out),
    built from its `run.json` and `config.gin`, in run-id order."""
    names = {f.name for f in fields(Cell)} - _PLACE
    cells = []
    folder = runs_dir(results)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name.startswith(".") or not path.is_dir():
            continue
        state = inspect_run(path)
        if state.damaged or state.record.get("status") != Status.DONE:
            continue
        record = state.record
        saved = {k: v for k, v in record.items() if k in names}
        saved["files"] = tuple(saved.get("files", ()))
        saved["bindings"] = tuple(saved.get("bindings", ()))
        saved["device"] = record.get("injected", {}).get("device", "auto")
        cells.append(Cell(**saved, results=str(results),
                          config_text=(path / "config.gin").read_text(), evaluate_only=True))
    return cells
