"""Run one cell: build it from gin, train with the objective, evaluate the test-time solver, record.

`run_cell(cell)` is what every executor calls, in whatever process it runs in. It starts from a
clean gin state, parses the shipped config text, seeds python/numpy/torch, trains
(`bench.train`), evaluates (`bench.evaluate`), and writes the run folder through
`bench.store.RunWriter` (atomically, run.json last). It never raises for a failing cell: the outcome
says `done`, `failed` (with traceback) or `diverged` (a non-finite training loss, with the step,
or a non-finite evaluation value, with the metric).

`python -m bench.run CELL.json` runs one serialised cell (for cluster executors).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gin
import torch

from bench.cell import Cell
from bench.config import parse_text
from bench.evaluate import check_finite, evaluate, metric_directions
from bench.experiment import Experiment
from bench.provenance import environment
from bench.schema import Status
from bench.store import RunWriter
from bench.train import Diverged, Recorder, pick_device, seed_everything, train


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run `cell` in this process and publish its run folder. Returns a short outcome dict."""
    started = time.time()
    writer = RunWriter(Path(cell.results), cell.run_id)
    record: dict[str, Any] = {
        **{k: v for k, v in cell.to_dict().items() if k not in ("config_text", "results")},
        "injected": {"seed": cell.seed, "device": cell.device},
        **environment(), "pid": os.getpid(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
    }
    rec = Recorder(cell.run_id, cell.task, cell.model, cell.objective, cell.seed)
    try:
        writer.write_text("config.gin", cell.config_text)
        if cell.threads:
            torch.set_num_threads(cell.threads)
        record["threads"] = torch.get_num_threads()
        parse_text(cell.config_text)
        seed_everything(cell.seed)
        exp = Experiment()
        device = pick_device(cell.device)
        record["device"] = str(device)
        if device.type == "cuda":
            record["device_name"] = torch.cuda.get_device_name(device)
            record["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        exp.model.to(device)
        exp.objective.setup(exp.task)
        exp.objective.to(device)
        record.update(train(exp, device, cell.seed, rec, progress=cell.progress))
        record["metric_directions"] = metric_directions(exp)
        evaluate(exp, device, rec)
        check_finite(rec.rows)
        writer.write_text("operative.gin", gin.operative_config_str())
        record.update(status=Status.DONE, reason="")
    except (Diverged, FloatingPointError) as err:  # tasks raise the latter on non-finite values
        record.update(status=Status.DIVERGED, reason=str(err))
    except Exception as err:  # noqa: BLE001 - a failing cell must not stop the matrix
        record.update(status=Status.FAILED, reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc())
    finally:
        gin.clear_config()
    record["wall_time_s"] = time.time() - started
    record["finished"] = datetime.now(timezone.utc).isoformat()
    writer.write_metrics(rec.rows)
    writer.publish(record)
    return {"run_id": cell.run_id, "status": str(record["status"]), "reason": record["reason"],
            "wall_time_s": record["wall_time_s"]}


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.run CELL.json`: run one serialised cell (used by cluster executors)."""
    args = argv if argv is not None else sys.argv[1:]
    cell = Cell(**json.loads(Path(args[0]).read_text()))
    outcome = run_cell(cell)
    print(json.dumps(outcome))
    return 0 if outcome["status"] == Status.DONE else 1


if __name__ == "__main__":
    sys.exit(main())
