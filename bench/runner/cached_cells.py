"""A matrix's cells looked up in a results folder's pre-key index, without building any of them.

`bench run` tries this first (`bench.cli.cmd_run`): each cell's pre-key (`bench.runner.prekey`) is
computed from the raw text of its files, which needs neither gin parsing of the cell nor torch, and
looked up; when every cell (and every fine-tuned cell's parent) is there, the index gives each
one's run id, keys and skip reason, and the runner decides what is done from the run folders as
always. The cells returned are stand-ins: identity and skip reason, no config text; `run` uses
them only when nothing is left to run (`bench.runner.cell_runner.Plan.settled`) and builds every cell
otherwise, so a stand-in never reaches a worker.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.runner.cell import Cell
from bench.runner.config import ConfigError
from bench.runner.matrix import Matrix, combination_files, matrix_inputs
from bench.runner.prekey import cell_prekey, combination_prekey, read_index


class _Prekeys:
    """Pre-keys of the cells of one matrix part, each combination's computed once."""

    def __init__(self, matrix: Matrix, gin_files: Sequence[str], gin_bindings: Sequence[str]):
        self.scale = matrix.scale
        self.scale_file, self.extra, self.bindings = matrix_inputs(matrix, gin_files, gin_bindings)
        self.known: dict[tuple[str, str, str], str] = {}

    def cell(self, task: str, model: str, objective: str, seed: int) -> str:
        axes = (task, model, objective)
        if axes not in self.known:
            files, names = combination_files(*axes)
            self.known[axes] = combination_prekey(
                self.scale, [self.scale_file, *files, *self.extra], self.bindings, names)
        return cell_prekey(self.known[axes], seed)


def _entries(index: dict[str, dict[str, Any]], prekeys: _Prekeys, task: str, model: str,
             objective: str, seed: int) -> list[dict[str, Any]] | None:
    """The index entries of one cell: its parent's (a fine-tuned cell's, whose parent must be
    unchanged too) and its own; None when either is not there."""
    entry = index.get(prekeys.cell(task, model, objective, seed))
    if entry is None or not entry["init_from"]:
        return None if entry is None else [entry]
    up = prekeys.cell(task, model, entry["init_from"], seed)
    return [index[up], entry] if up == entry["parent_prekey"] and up in index else None


def _stand_in(entry: dict[str, Any], results: Path, device: str, timeout: float) -> Cell:
    fields = {k: v for k, v in entry.items() if k not in ("parent_prekey", "init_from")}
    return Cell(**fields, config_text="", results=str(results), device=device,
                timeout=float(timeout))


def cached_cells(parts: Sequence[Matrix], results: Path, gin_files: Sequence[str] = (),
                 gin_bindings: Sequence[str] = (), device: str = "auto") -> list[Cell] | None:
    """The cells of `parts` (in `bench.runner.matrix.expand_cells`'s order, without repeats) from the
    pre-key index of `results`; None when one is not there (or a file cannot be read: the slow
    path names it). Reads only. Raises `ConfigError` for a matrix that cannot expand (its
    seeds, file names or timeout), as `expand_cells` does."""
    index = read_index(results)
    if not index:
        return None
    cells: dict[str, Cell] = {}
    for matrix in parts:
        prekeys = _Prekeys(matrix, gin_files, gin_bindings)
        for task, model, objective in itertools.product(matrix.tasks, matrix.models,
                                                         matrix.objectives):
            for seed in matrix.seeds:
                try:
                    found = _entries(index, prekeys, task, model, objective, seed)
                except ConfigError:
                    return None
                if found is None:
                    return None
                for entry in found:
                    cells.setdefault(entry["run_id"],
                                     _stand_in(entry, results, device, matrix.timeout))
    return list(cells.values())
