"""Run one cell: build it from gin, train with the objective, evaluate the test-time solver, record.

`run_cell(cell)` is what every executor calls, in whatever process it runs in. It starts from a
clean gin state, parses the shipped config text, seeds python/numpy/torch, trains
(`bench.runner.train`), evaluates (`bench.runner.evaluate`), and writes the run folder through
`bench.runner.store.RunWriter` (atomically, run.json last). It never raises for a failing cell: the outcome
says `done`, `failed` (with traceback) or `diverged` (a non-finite training loss, with the step,
or a non-finite evaluation value, with the metric).

`python -m bench.runner.run CELL.json` runs one serialised cell (for cluster executors).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gin
import pandas as pd
import torch

from bench.provenance import environment
from bench.runner import checkpoint
from bench.runner.cell import Cell
from bench.runner.config import parsed_text
from bench.runner.device import Diverged, pick_device, seed_everything
from bench.runner.evaluate import check_finite, evaluate, metric_directions
from bench.runner.experiment import Experiment
from bench.runner.recorder import Recorder
from bench.runner.store import RunWriter, inspect_run, read_run, runs_dir
from bench.runner.train import train
from bench.runner.writable import storage_error
from bench.schema import Phase, Status


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run `cell` in this process and publish its run folder. Returns a short outcome dict; when the
    run folder cannot be written (disk full, read-only file system, ...) the outcome's `storage`
    names the cause and the driver stops there (`bench.runner.writable`)."""
    writer = None
    try:
        writer = RunWriter(Path(cell.results), cell.run_id)
        return _run_and_publish(cell, writer)
    except OSError as err:
        cause = storage_error(err)
        if not cause:
            raise
        if writer is not None:
            writer.discard()
        return {"run_id": cell.run_id, "status": str(Status.FAILED), "reason": cause,
                "wall_time_s": None, "storage": cause}


def _run_and_publish(cell: Cell, writer: RunWriter) -> dict[str, Any]:
    started = time.time()
    record: dict[str, Any] = {
        **{k: v for k, v in cell.to_dict().items() if k not in ("config_text", "results")},
        "injected": {"seed": cell.seed, "device": cell.device},
        **environment(), "pid": os.getpid(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
    }
    rec = Recorder(cell.run_id, cell.task, cell.model, cell.objective, cell.seed,
                   only_split=cell.eval_split)
    try:
        writer.write_text("config.gin", cell.config_text)
        if cell.threads:
            torch.set_num_threads(cell.threads)
        record["threads"] = torch.get_num_threads()
        with parsed_text(cell.config_text):  # gin is read in this block only
            _train_and_evaluate(cell, writer, rec, record)
        record.update(status=Status.DONE, reason="")
    except (Diverged, FloatingPointError) as err:  # tasks raise the latter on non-finite values
        record.update(status=Status.DIVERGED, reason=str(err))
    except Exception as err:  # noqa: BLE001 - a failing cell must not stop the matrix
        if storage_error(err):
            raise
        record.update(status=Status.FAILED, reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc())
    record["wall_time_s"] = time.time() - started
    record["finished"] = datetime.now(timezone.utc).isoformat()
    writer.write_metrics(rec.rows)
    writer.publish(record)
    return {"run_id": cell.run_id, "status": str(record["status"]), "reason": record["reason"],
            "wall_time_s": record["wall_time_s"]}


def reuse_training(cell: Cell, exp: Experiment, writer: RunWriter, rec: Recorder) -> dict:
    """For a cell that differs from its finished run only in evaluation settings: load that run's
    weights into `exp.model` (and objective), copy them and its training rows into the new run,
    and return the training fields of its record (timings, init_from, ...) to keep."""
    folder = runs_dir(Path(cell.results)) / cell.run_id
    old = read_run(Path(cell.results), cell.run_id) or {}
    if old.get("status") != Status.DONE or old.get("train_key") != cell.train_key:
        raise checkpoint.CheckpointError(f"{folder}: no finished run with training key "
                                         f"{cell.train_key[:8]} to re-evaluate")
    weights = folder / checkpoint.FILENAME
    checkpoint.load_model(weights, exp.model)
    shutil.copyfile(weights, writer.stage / checkpoint.FILENAME)
    trained = pd.read_parquet(folder / "metrics.parquet")
    rec.rows.extend(trained[trained["phase"] == str(Phase.TRAIN)].to_dict("records"))
    kept = {k: v for k, v in old.items() if k in TRAINING_RECORD_FIELDS}
    return {**kept, "evaluated_from": {"key": old.get("key"), "finished": old.get("finished")}}


#: run.json fields of training (`init_from`, and what `bench.runner.train.train` returns) that a
#: re-evaluation keeps from the trained run
TRAINING_RECORD_FIELDS = ("init_from", "steps", "step_time_s", "step_time_mean_s")


def _train_and_evaluate(cell: Cell, writer: RunWriter, rec: Recorder,
                        record: dict[str, Any]) -> None:
    """Build the cell's `Experiment` from the parsed config, train (or, for `evaluate_only`,
    reload the weights of its finished run), evaluate, save the weights and the operative config
    into the staging folder; facts go into `record`."""
    seed_everything(cell.seed)
    exp = Experiment()
    if cell.eval_split and exp.eval_split != cell.eval_split:
        raise RuntimeError(f"this cell may only evaluate the {cell.eval_split!r} split, but its "
                           f"config sets bench.run.Experiment.eval_split = {exp.eval_split!r}")
    device = pick_device(cell.device)
    record["device"] = str(device)
    if device.type == "cuda":
        record["device_name"] = torch.cuda.get_device_name(device)
        record["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cell.parent and not cell.evaluate_only:
        record["init_from"] = init_from_parent(cell, exp)
    record["dlc_form"] = exp.task.describe()
    record["facts"] = exp.task.facts.resolve(cell.task, cell.model).as_dict()
    exp.model.to(device)
    exp.objective.setup(exp.task)
    exp.objective.to(device)
    if cell.evaluate_only:
        record.update(reuse_training(cell, exp, writer, rec))
    else:
        record.update(train(exp, device, cell.seed, rec, progress=cell.progress))
        checkpoint.save(writer.stage / checkpoint.FILENAME, exp.model, exp.objective,
                        {"run_id": cell.run_id, "key": cell.key,
                         "train_key": cell.train_key})
    record["metric_directions"] = metric_directions(exp)
    seed_everything(cell.seed)  # evaluation starts from one random state, trained or reloaded
    evaluate(exp, device, rec)
    check_finite(rec.rows)
    writer.write_text("operative.gin", gin.operative_config_str())


def init_from_parent(cell: Cell, exp: Experiment) -> dict[str, str]:
    """Load the final model weights of `cell.parent` (run first by the driver) into `exp.model`;
    returns `{run_id, key}` of the parent for run.json. Raises `CheckpointError` when the parent
    did not finish or its weights do not fit."""
    folder = runs_dir(Path(cell.results)) / cell.parent
    state = inspect_run(folder) if folder.is_dir() else None
    if state is None:
        raise checkpoint.CheckpointError(f"init_from cell {cell.parent} is not done (status "
                                         "missing): run it first")
    if state.damaged:
        raise checkpoint.CheckpointError(f"init_from cell {cell.parent} is damaged ({state.problem}):"
                                         " run the matrix again to re-run it first")
    if state.record.get("status") != Status.DONE:
        raise checkpoint.CheckpointError(
            f"init_from cell {cell.parent} is not done (status {state.record.get('status')}): "
            "run it first")
    metadata = checkpoint.load_model(folder / checkpoint.FILENAME, exp.model)
    return {"run_id": cell.parent, "key": metadata.get("key", "")}


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.runner.run CELL.json`: run one serialised cell (used by cluster executors)."""
    args = argv if argv is not None else sys.argv[1:]
    cell = Cell(**json.loads(Path(args[0]).read_text()))
    outcome = run_cell(cell)
    print(json.dumps(outcome))
    return 0 if outcome["status"] == Status.DONE else 1


if __name__ == "__main__":
    sys.exit(main())
