"""Executors: where cells run. Each yields one outcome dict per cell, as cells finish.

* `sequential`: in this process, one after the other.
* `local`: a spawn process pool, one fresh process per cell (`max_tasks_per_child=1`), each worker
  pinned to one GPU through `CUDA_VISIBLE_DEVICES` before torch touches CUDA, torch threads split
  between workers.
* `submitit`: SLURM job arrays through submitit (`pip install dlc-bench[slurm]`); its `local` and
  `debug` clusters run on this machine.
* `ray`: Ray tasks (`pip install dlc-bench[ray]`), one GPU per task when GPUs are present.

Workers receive only a `Cell` (plain data, the config as text) and write their own run folder; the
driver only collects outcomes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.cell import Cell
from bench.schema import Status

EXECUTORS = ("sequential", "local", "submitit", "ray")


def visible_gpus() -> list[str]:
    """GPU ids this process may use (from CUDA_VISIBLE_DEVICES, else every device torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _failed(cell: Cell, err: BaseException) -> dict[str, Any]:
    """Outcome of a cell whose worker died (crash, OOM kill); recorded in its run folder too, so
    `list` and reports show it (it is not cached: the next run retries it)."""
    from bench.store import read_run, record_status

    reason = f"worker process died: {type(err).__name__}: {err}"
    previous = read_run(Path(cell.results), cell.run_id)
    if previous is None or previous.get("key") != cell.key:
        record_status(Path(cell.results), cell, Status.FAILED, reason)
    return {"run_id": cell.run_id, "status": str(Status.FAILED), "reason": reason,
            "wall_time_s": None}


def run_sequential(cells: Sequence[Cell], threads: int = 0) -> Iterator[dict[str, Any]]:
    from bench.run import run_cell

    for cell in cells:
        yield run_cell(replace(cell, threads=threads or cell.threads))


_GPU_SLOTS: Any = None


def _init_worker(slots: Any) -> None:
    global _GPU_SLOTS
    _GPU_SLOTS = slots


def _pinned_run(cell: Cell) -> dict[str, Any]:
    """Runs in a fresh spawn process: take a GPU slot, pin it, run, give the slot back."""
    gpu = _GPU_SLOTS.get() if _GPU_SLOTS is not None else None
    try:
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the first CUDA call in this process
        from bench.run import run_cell

        return run_cell(cell)
    finally:
        if gpu is not None:
            _GPU_SLOTS.put(gpu)


def run_local(cells: Sequence[Cell], jobs: int, threads: int = 0) -> Iterator[dict[str, Any]]:
    """Spawn pool of `jobs` workers; one process per cell; one GPU per worker when GPUs exist.

    A worker that dies (segfault, OOM kill) breaks the whole pool and every cell in flight with
    it. Those cells are retried once, each alone in a fresh one-worker pool, so only the cell that
    really kills its process is reported failed.
    """
    gpus = visible_gpus() if any(c.device != "cpu" for c in cells) else []
    per_worker = threads or max(1, (os.cpu_count() or 1) // jobs)
    ctx = mp.get_context("spawn")
    manager = ctx.Manager() if gpus else None

    def pool_run(batch: Sequence[Cell], workers: int, last_try: bool):
        slots = None
        if manager is not None:
            slots = manager.Queue()
            for i in range(workers):
                slots.put(gpus[i % len(gpus)])
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, max_tasks_per_child=1,
                                 initializer=_init_worker, initargs=(slots,)) as pool:
            futures = {pool.submit(_pinned_run, c): c for c in batch}
            for future in as_completed(futures):
                try:
                    yield future.result(), None
                except BrokenProcessPool as err:
                    yield (_failed(futures[future], err) if last_try else None), futures[future]
                except Exception as err:  # noqa: BLE001
                    yield _failed(futures[future], err), None

    try:
        broken = []
        for outcome, cell in pool_run([replace(c, threads=per_worker) for c in cells], jobs,
                                      last_try=False):
            if outcome is None:
                broken.append(cell)
            else:
                yield outcome
        for cell in broken:
            for outcome, _ in pool_run([cell], 1, last_try=True):
                yield outcome
    finally:
        if manager is not None:
            manager.shutdown()


def run_submitit(cells: Sequence[Cell], jobs: int, cluster: str | None = None,
                 folder: Path | None = None, **params: Any) -> Iterator[dict[str, Any]]:
    """Submit cells as a submitit job array (`cluster`: None = auto/SLURM, 'local', 'debug')."""
    try:
        import submitit
    except ImportError as err:
        raise RuntimeError("the submitit executor needs `pip install dlc-bench[slurm]`") from err
    from bench.run import run_cell

    if not cells:
        return
    folder = folder or Path(cells[0].results) / "submitit"
    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    executor.update_parameters(slurm_array_parallelism=jobs, **params)
    with executor.batch():
        pending = [(executor.submit(run_cell, c), c) for c in cells]
    for job, cell in pending:
        try:
            yield job.result()
        except Exception as err:  # noqa: BLE001 - FailedJobError / UncompletedJobError
            yield _failed(cell, err)


def run_ray(cells: Sequence[Cell], jobs: int, address: str | None = None) -> Iterator[dict[str, Any]]:
    """Run cells as Ray tasks; each asks for one GPU when the cluster has GPUs (Ray pins it)."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("the ray executor needs `pip install dlc-bench[ray]`") from err
    from bench.run import run_cell

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else jobs,
                 include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0)(run_cell)
        pending = {remote.remote(c): c for c in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                yield ray.get(done[0])
            except Exception as err:  # noqa: BLE001
                yield _failed(cell, err)
    finally:
        if started_here:
            ray.shutdown()


def execute(cells: Sequence[Cell], executor: str = "sequential", jobs: int = 1,
            threads: int = 0, **options: Any) -> Iterator[dict[str, Any]]:
    """Dispatch to the named executor."""
    if executor == "sequential":
        return run_sequential(cells, threads)
    if executor == "local":
        return run_local(cells, jobs, threads)
    if executor == "submitit":
        return run_submitit(cells, jobs, **options)
    if executor == "ray":
        return run_ray(cells, jobs, **options)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
