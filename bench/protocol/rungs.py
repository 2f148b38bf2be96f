"""The tune phase under successive halving (`bench.protocol.halving`), rung by rung and synchronous.

Stage k < K runs every surviving trial's rung cells (`stop_epoch` = the rung's epoch, one cell per
tuning seed, folder `rungs/e<epoch>/t<trial>/`) for every (task, model, objective) at once, waits
for all of them, then decides each (task, model, objective)'s promotions with Optuna's pruner on
the trial's MEAN validation score over its tuning seeds (a trial with a failed seed scores NaN and
is pruned). The last stage runs the survivors' ordinary full-budget trial cells (`trials/t<trial>`).
Every decision is a function of the scores alone, so a resumed run (cells are cached) makes the
same decisions. `trials.json` records per trial its rungs (epochs, results, run ids, mean score),
`pruned_at` (the rung index, or null when it reached the full budget), `full_epochs` and
`epochs_trained` (epochs run per tuning seed, restarts included: the compute it cost).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import numpy as np

from bench.protocol.halving import promoted, rung_epochs
from bench.protocol.select import trial_scores
from bench.protocol.sweep import Sweep, line_of
from bench.protocol.trial_cells import manifest_entry, print_dry, run_trial_cells, trial_cells
from bench.runner.cell import Cell
from bench.runner.config import ConfigError, parsed_text
from bench.runner.executors import Resources
from bench.runner.store import atomic_write_text


def full_epochs(cell: Cell) -> int:
    """`bench.run.Experiment.epochs` of a cell's config (the full training budget)."""
    from bench.runner.experiment import Experiment

    with parsed_text(cell.config_text):
        try:
            return int(gin.query_parameter("bench.run.Experiment.epochs"))
        except ValueError:  # not bound: the constructor's default
            import inspect

            return int(inspect.signature(Experiment).parameters["epochs"].default)


def _schedule(total: int, sweep: Sweep, group: tuple) -> tuple[int, list[int]]:
    """(full epochs, rung epochs) of a (task, model, objective); no rungs for a model that
    trains fewer than 2 epochs (nothing to halve). A rung schedule that cannot fit is an error."""
    if total < 2:
        return total, []
    try:
        return total, rung_epochs(sweep.rungs, total)
    except ValueError as err:
        raise ConfigError(f"{line_of(sweep.source, 'rungs')}: {group}: {err}") from None


def _stage_entry(entry: dict[str, Any], cells: Sequence[Cell], out: Path) -> dict[str, Any]:
    return {**entry, "results": str(Path(cells[0].results).relative_to(out)),
            "run_ids": [c.run_id for c in cells], "pruned_at": None}


def _mean_scores(out: Path, entries: Sequence[dict], sweep: Sweep
                 ) -> tuple[dict[tuple, float], dict[tuple, list[float]]]:
    """(task, model, objective, trial) -> mean validation score over the tuning seeds (NaN unless
    every seed is done), and -> the per-seed scores (in the entry's seed order)."""
    scores = trial_scores(out, entries, sweep)
    means, per_seed = {}, {}
    for key, group in scores.groupby(["task", "model", "objective", "trial"]):
        done = bool((group["status"] == "done").all())
        means[key] = float(group["score"].mean()) if done else float("nan")
        per_seed[key] = [float(v) for v in group["score"]]
    return means, per_seed


def tune_with_rungs(plan: Sequence[tuple], sweep: Sweep, out: Path,
                    args: argparse.Namespace, resources: Resources | None = None) -> int:
    """Run the tune phase of `plan` ((part, task, model, objective, trial, params) per trial)
    under the sweep's rungs. Returns 1 when a cell failed, else 0."""
    entries, full, epochs = {}, {}, {}
    for part, task, model, objective, trial, params in plan:
        cells = trial_cells(part, task, model, objective, trial, params, out, args.device,
                            sweep.source)
        entry = manifest_entry(part, task, model, objective, trial, params, cells)
        key = (entry["task"], entry["model"], entry["objective"], trial)
        if not entry["skipped"]:
            group = key[:3]
            if group not in epochs:
                epochs[group] = _schedule(full_epochs(cells[0]), sweep, group)
            entry.update(full_epochs=epochs[group][0], rungs=[], pruned_at=None)
        entries[key], full[key] = entry, (part, task, model, objective, trial, params, cells)
    alive = {k for k, e in entries.items() if not e["skipped"]}
    skipped = [c for k, e in entries.items() if e["skipped"] for c in full[k][-1]]
    status = 0
    for stage in range(len(sweep.rungs) + 1):
        cells, staged = list(skipped) if stage == 0 else [], {}
        for key in sorted(alive):
            part, task, model, objective, trial, params, made = full[key]
            if stage < len(sweep.rungs) and not epochs[key[:3]][1]:
                continue  # nothing to halve (e.g. ICP trains 0 epochs): straight to the full budget
            if stage < len(sweep.rungs):
                made = trial_cells(part, task, model, objective, trial, params, out, args.device,
                                   sweep.source, epochs[key[:3]][1][stage])
            cells += made
            staged[key] = _stage_entry(entries[key], made, out)
        if args.dry_run:
            print(f"(rung 0 of {len(sweep.rungs)}; the later rungs run the trials it promotes)")
            return print_dry(cells, out)
        _write(out, entries, finished=False)
        outcomes = run_trial_cells(cells, args, resources)
        status |= int(any(o["status"] != "done" for o in outcomes))
        if stage == len(sweep.rungs):
            break
        means, per_seed = _mean_scores(out, list(staged.values()), sweep) if staged else ({}, {})
        for key in set(alive) & set(staged):
            entries[key]["rungs"].append(dict(
                epochs=epochs[key[:3]][1][stage], results=staged[key]["results"],
                run_ids=staged[key]["run_ids"], score=means.get(key, float("nan")),
                seed_scores=per_seed.get(key, [])))
        alive = _promote(alive, means, sweep, stage, entries)
    _write(out, entries, finished=True)
    return status


def _promote(alive: set[tuple], means: dict[tuple, float], sweep: Sweep, stage: int,
             entries: dict[tuple, dict]) -> set[tuple]:
    """The trials of `alive` Optuna's pruner promotes out of rung `stage`, per (task, model,
    objective); the others get `pruned_at = stage`."""
    kept = {k for k in alive if k not in means}  # groups without rungs pass through
    for group in sorted({k[:3] for k in alive if k in means}):
        mine = {k[3]: means[k] for k in alive if k[:3] == group}
        direction = sweep.metric_of(group[0])[1]
        kept |= {(*group, t) for t in promoted(mine, direction, sweep.eta(group[2]), stage)}
    for key in alive - kept:
        entries[key]["pruned_at"] = stage
    return kept


def _write(out: Path, entries: dict[tuple, dict], finished: bool) -> None:
    """trials.json with every trial's rungs, decision and compute so far (`finished`: the full
    budget stage ran, so every trial not pruned reached it)."""
    for entry in entries.values():
        if entry["skipped"]:
            continue
        entry["reached_full"] = finished and entry["pruned_at"] is None
        entry["epochs_trained"] = sum(r["epochs"] for r in entry["rungs"]) + \
            (entry["full_epochs"] if entry["reached_full"] else 0)
    manifest = [entries[k] for k in sorted(entries)]
    atomic_write_text(out / "trials.json", json.dumps(manifest, indent=1, default=_json) + "\n")


def _json(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {value!r}")
