"""Executors: where cells run. Each yields one outcome dict per cell, as cells finish.

* `sequential`: one cell at a time, each in a fresh child process;
* `local`: `jobs` cells at a time, each in a fresh child process, each pinned to one GPU through
  `CUDA_VISIBLE_DEVICES` before torch touches CUDA, torch threads split between them;
* `submitit`: SLURM job arrays through submitit (`pip install dlc-bench[slurm]`); its `local` and
  `debug` clusters run on this machine;
* `ray`: Ray tasks (`pip install dlc-bench[ray]`).

Child processes are forked from a fork server that has imported the suite once (so a cell starts
in milliseconds, not seconds) and receive the driver's environment, `sys.path`, working folder and
umask. A cell that kills its process (segfault, the OOM killer) or outlives its `timeout` is
recorded `failed` ("worker process died" / "timeout") and the matrix goes on. A child watches its
driver and exits when the driver is gone (kill -9 included), so no orphan publishes a run folder
after another driver took over.

Workers receive only a `Cell` (plain data, the config as text) and write their own run folder; the
driver only collects outcomes. Cluster resources (time limit, GPUs, CPUs, memory, partition) come
from `Resources`, bound in the matrix file (`gin/matrices/<scale>.gin` sets defaults per scale).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

import gin

from bench.runner.cell import EXECUTORS, Cell
from bench.schema import Status


@gin.configurable(module="bench.executors")
@dataclass
class Resources:
    """What a cluster executor asks for per cell (bound in a matrix file; not part of any cell's
    identity). submitit: `timeout_min`, `gpus_per_task` (-> `gpus_per_node`), `cpus_per_task`,
    `mem_gb`, `partition` ('' = the cluster's default), `array_parallelism` (0 = `--jobs`).
    ray: `gpus_per_task` and `cpus_per_task`. `gpus_per_task=None`: one GPU per cell when the
    machine or cluster has GPUs, none otherwise."""

    timeout_min: int = 60
    gpus_per_task: int | None = None
    cpus_per_task: int = 1
    mem_gb: float = 8.0
    partition: str = ""
    array_parallelism: int = 0


def submitit_parameters(resources: Resources) -> dict[str, Any]:
    """`AutoExecutor.update_parameters` keywords for `resources`."""
    params: dict[str, Any] = {"timeout_min": resources.timeout_min}
    if resources.gpus_per_task is not None:
        params["gpus_per_node"] = resources.gpus_per_task
    params.update(cpus_per_task=resources.cpus_per_task, mem_gb=resources.mem_gb)
    if resources.partition:
        params["slurm_partition"] = resources.partition
    if resources.array_parallelism:
        params["slurm_array_parallelism"] = resources.array_parallelism
    return params


def visible_gpus() -> list[str]:
    """GPU ids this process may use (from CUDA_VISIBLE_DEVICES, else every device torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _failed(cell: Cell, reason: str) -> dict[str, Any]:
    """Outcome of a cell whose worker died or timed out; recorded in its run folder too, so `list`
    and reports show it (it is not cached: the next run retries it)."""
    from bench.runner.store import read_run, record_status

    _discard_staging(cell)  # what the dead worker had staged
    previous = read_run(Path(cell.results), cell.run_id)
    if previous is None or previous.get("key") != cell.key:
        record_status(Path(cell.results), cell, Status.FAILED, reason)
    return {"run_id": cell.run_id, "status": str(Status.FAILED), "reason": reason,
            "wall_time_s": None}


# --- child processes ---------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_driver(driver: int, every_s: float = 0.5) -> None:
    """Exit this process as soon as the driver process `driver` is gone."""
    while _alive(driver):
        time.sleep(every_s)
    os._exit(70)


def _child(cell: Cell, gpu: str | None, context: dict[str, Any], conn: Any) -> None:
    """Runs in the child: take the driver's environment, watch the driver, run, send the outcome.
    Ctrl-C is the driver's to handle (it kills its children): the child ignores SIGINT, so a
    Ctrl-C to the process group prints no traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tqdm import tqdm

    # a thread lock, not tqdm's default named semaphore (created on the first progress bar, e.g.
    # by `datasets.load_from_disk`): a worker killed on Ctrl-C or a timeout would leak it
    tqdm.set_lock(threading.RLock())
    os.environ.clear()
    os.environ.update(context["env"])
    sys.path[:] = context["path"]
    os.chdir(context["cwd"])
    os.umask(context["umask"])
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the first CUDA call in this process
    threading.Thread(target=_watch_driver, args=(context["driver"],), daemon=True).start()
    from bench.runner.run import run_cell

    conn.send(run_cell(cell))
    conn.close()


def _driver_context() -> dict[str, Any]:
    umask = os.umask(0o022)
    os.umask(umask)
    return {"env": dict(os.environ), "path": list(sys.path), "cwd": os.getcwd(), "umask": umask,
            "driver": os.getpid()}


def _fork_context() -> Any:
    """A fork server that has imported the suite once; plain spawn where fork servers do not exist."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["bench.runner.registry", "bench.runner.run", "datasets"])
    return ctx


def _receive(conn: Any) -> dict[str, Any] | None:
    """The outcome a finished child sent, or None when it died before sending one."""
    try:
        return conn.recv() if conn.poll() else None
    except (EOFError, OSError):
        return None
    finally:
        conn.close()


@dataclass
class _Slot:
    process: Any
    cell: Cell
    conn: Any
    started: float
    gpu: str | None


def run_children(cells: Sequence[Cell], jobs: int = 1,
                 gpus: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Run each cell in its own child process, at most `jobs` at a time; a child that dies or
    runs past `cell.timeout` seconds is killed and its cell recorded failed."""
    ctx = _fork_context()
    context = _driver_context()
    todo = list(cells)
    free = [gpus[i % len(gpus)] if gpus else None for i in range(jobs)]
    running: dict[Any, _Slot] = {}
    try:
        while todo or running:
            while todo and free:
                cell, gpu = todo.pop(0), free.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(cell, gpu, context, send), daemon=False)
                process.start()
                send.close()
                running[process.sentinel] = _Slot(process, cell, receive, time.monotonic(), gpu)
            deadlines = [s.started + s.cell.timeout for s in running.values() if s.cell.timeout > 0]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for sentinel in wait(list(running), timeout=wait_s):
                slot = running.pop(sentinel)
                slot.process.join()
                outcome = _receive(slot.conn)
                free.append(slot.gpu)
                yield outcome or _failed(
                    slot.cell, f"worker process died (exit code {slot.process.exitcode})")
            now = time.monotonic()
            for sentinel, slot in list(running.items()):
                if slot.cell.timeout > 0 and now - slot.started > slot.cell.timeout:
                    slot.process.kill()
                    slot.process.join()
                    slot.conn.close()
                    del running[sentinel]
                    free.append(slot.gpu)
                    yield _failed(slot.cell, f"timeout: ran longer than {slot.cell.timeout:g} s")
    finally:  # the driver stops (Ctrl-C, an error, the caller closed us): stop every child
        for slot in running.values():
            slot.process.kill()
            slot.process.join()
            slot.conn.close()
            _discard_staging(slot.cell)


def _discard_staging(cell: Cell) -> None:
    """Remove what a killed child had staged (the next start would, too)."""
    from bench.runner.store import clean_staging

    clean_staging(Path(cell.results), cell.run_id)


def run_sequential(cells: Sequence[Cell], threads: int = 0) -> Iterator[dict[str, Any]]:
    """One cell at a time, each in a fresh child process."""
    return run_children([replace(c, threads=threads or c.threads) for c in cells], jobs=1)


def threads_per_cell(jobs: int, threads: int = 0) -> int:
    """The torch threads of one cell of a `jobs`-wide pool: `threads`, else cores / jobs."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


def run_local(cells: Sequence[Cell], jobs: int, threads: int = 0) -> Iterator[dict[str, Any]]:
    """`jobs` child processes at a time; one GPU per child when GPUs exist; torch threads split."""
    gpus = visible_gpus() if any(c.device != "cpu" for c in cells) else []
    per_worker = threads_per_cell(jobs, threads)
    return run_children([replace(c, threads=per_worker) for c in cells], jobs, gpus)


def run_submitit(cells: Sequence[Cell], jobs: int, resources: Resources | None = None,
                 cluster: str | None = None, folder: Path | None = None) -> Iterator[dict[str, Any]]:
    """Submit cells as a submitit job array (`cluster`: None = auto/SLURM, 'local', 'debug')."""
    try:
        import submitit
    except ImportError as err:
        raise RuntimeError("the submitit executor needs `pip install dlc-bench[slurm]`") from err
    from bench.runner.run import run_cell

    if not cells:
        return
    resources = resources or Resources()
    params = submitit_parameters(resources)
    params.setdefault("slurm_array_parallelism", jobs)
    longest = max(c.timeout for c in cells)
    if longest > 0:  # the cell timeout, rounded up to whole minutes, caps the job's time limit
        params["timeout_min"] = min(params["timeout_min"], math.ceil(longest / 60))
    executor = submitit.AutoExecutor(folder=str(folder or Path(cells[0].results) / "submitit"),
                                     cluster=cluster)
    executor.update_parameters(**params)
    with executor.batch():
        pending = [(executor.submit(run_cell, c), c) for c in cells]
    for job, cell in pending:
        try:
            yield job.result()
        except Exception as err:  # noqa: BLE001 - FailedJobError / UncompletedJobError
            yield _failed(cell, f"worker process died: {type(err).__name__}: {err}")


def run_ray(cells: Sequence[Cell], jobs: int, resources: Resources | None = None,
            address: str | None = None) -> Iterator[dict[str, Any]]:
    """Run cells as Ray tasks with `resources.cpus_per_task` CPUs and `gpus_per_task` GPUs each."""
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("the ray executor needs `pip install dlc-bench[ray]`") from err
    from bench.runner.run import run_cell

    resources = resources or Resources()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=None if address else jobs,
                 include_dashboard=False, log_to_driver=False)
    try:
        gpus = resources.gpus_per_task
        if gpus is None:
            gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        remote = ray.remote(num_cpus=resources.cpus_per_task, num_gpus=gpus)(run_cell)
        pending = {remote.remote(c): c for c in cells}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done[0])
            try:
                yield ray.get(done[0])
            except Exception as err:  # noqa: BLE001
                yield _failed(cell, f"worker process died: {type(err).__name__}: {err}")
    finally:
        if started_here:
            ray.shutdown()


def execute(cells: Sequence[Cell], executor: str = "sequential", jobs: int = 1, threads: int = 0,
            resources: Resources | None = None) -> Iterator[dict[str, Any]]:
    """Dispatch to the named executor."""
    if executor == "sequential":
        return run_sequential(cells, threads)
    if executor == "local":
        return run_local(cells, jobs, threads)
    if executor == "submitit":
        return run_submitit(cells, jobs, resources)
    if executor == "ray":
        return run_ray(cells, jobs, resources)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
