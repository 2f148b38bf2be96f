"""Hung or killed cells, worker lifetime, thread counts and file modes (issue 10, classes 2 and 4)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.runner.executors import Resources, submitit_parameters
from bench.schema import Status
from tests.conftest import REPO, bench_cli, run_records, write_matrix, write_plugin

PLUGIN = '''
import os, time, gin
from bench.objectives import Plain

@gin.configurable(module="slow_plugin")
class Sleepy(Plain):
    """Writes its pid to `pid_file`, then sleeps `seconds` in its first step."""
    def __init__(self, seconds: float = 60.0, pid_file: str = ""):
        super().__init__()
        self.seconds, self.pid_file = seconds, pid_file
    def forward(self, task, model, outputs, batch):
        if self.pid_file:
            with open(self.pid_file, "w") as handle:
                handle.write(str(os.getpid()))
        time.sleep(self.seconds)
        return super().forward(task, model, outputs, batch)

@gin.configurable(module="slow_plugin")
class Killer(Plain):
    """Kills its own process the way the OOM killer does."""
    def forward(self, task, model, outputs, batch):
        os.kill(os.getpid(), 9)
'''


@pytest.fixture
def plugin(plugin_dir: Path) -> dict[str, Path]:
    return write_plugin(plugin_dir, "slow_plugin", PLUGIN, {
        "sleepy": "bench.run.Experiment.objective = @slow_plugin.Sleepy()",
        "killer": "bench.run.Experiment.objective = @slow_plugin.Killer()",
    })


@pytest.mark.slow  # seconds of real runs or resampling; .ci/run runs it too
def test_a_hung_cell_times_out_as_failed_and_the_matrix_goes_on(
        tmp_path: Path, plugin: dict[str, Path]) -> None:
    matrix = write_matrix(tmp_path, ["plain", str(plugin["sleepy"])])
    results = tmp_path / "out"
    begin = time.monotonic()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress",
                     "--timeout", "4") == 1
    assert time.monotonic() - begin < 50  # the sleeper alone would take 60 s
    by_objective = {r["objective"]: r for r in run_records(results).values()}
    assert by_objective["plain"]["status"] == Status.DONE
    assert by_objective["sleepy"]["status"] == Status.FAILED
    assert by_objective["sleepy"]["reason"].startswith("timeout")
    assert not [p for p in (results / "runs").iterdir() if p.name.startswith(".")]


@pytest.mark.slow  # seconds of real runs or resampling; .ci/run runs it too
def test_the_timeout_can_be_set_in_the_matrix(tmp_path: Path, plugin: dict[str, Path]) -> None:
    matrix = write_matrix(tmp_path, [str(plugin["sleepy"])])
    matrix.write_text(matrix.read_text() + "bench.matrix.Matrix.timeout = 3\n")
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress",
                     "--executor", "local", "--jobs", "1") == 1
    (record,) = run_records(results).values()
    assert record["status"] == Status.FAILED and record["reason"].startswith("timeout")


def test_sequential_survives_a_cell_that_kills_its_own_process(
        tmp_path: Path, plugin: dict[str, Path]) -> None:
    matrix = write_matrix(tmp_path, ["plain", str(plugin["killer"]), "margin"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    by_objective = {r["objective"]: r for r in run_records(results).values()}
    assert by_objective["plain"]["status"] == Status.DONE
    assert by_objective["margin"]["status"] == Status.DONE
    assert by_objective["killer"]["status"] == Status.FAILED
    assert "worker process died" in by_objective["killer"]["reason"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] \
        if Path(f"/proc/{pid}").exists() else "X"
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "sequential"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_driver(tmp_path: Path, plugin: dict[str, Path], executor: str,
                                       sig: signal.Signals) -> None:
    pid_file = tmp_path / "worker.pid"
    matrix = write_matrix(tmp_path, [str(plugin["sleepy"])],
                          extra=[f"slow_plugin.Sleepy.pid_file = '{pid_file}'"])
    results = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"]}
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(matrix), "--results", str(results),
         "--no-progress", "--executor", executor, "--jobs", "1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    assert worker != driver.pid and _alive(worker)
    driver.send_signal(sig)
    driver.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the worker outlived its driver"
    assert not list((results / "runs").glob("*/run.json"))  # it published nothing


def _sigint_as_in_a_terminal() -> None:
    """SIGINT at its default in the driver, as a job started from a terminal has it: a test run
    started in the background (`cmd &` in a script) inherits SIGINT ignored, and so would the
    driver, which then never sees the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow  # a real driver and its workers in a subprocess, interrupted mid-cell
@pytest.mark.parametrize("executor", ["sequential", "local"])
def test_ctrl_c_exits_130_with_one_line_and_leaks_nothing(
        tmp_path: Path, plugin: dict[str, Path], executor: str) -> None:
    """Issue 20, item 8: SIGINT to the whole process group (what Ctrl-C sends) during `run`."""
    pid_file = tmp_path / "worker.pid"
    sleepy = plugin["sleepy"].with_name("sleepy_pid.gin")  # plain must not see this binding
    sleepy.write_text(f"{plugin['sleepy'].read_text()}slow_plugin.Sleepy.pid_file = '{pid_file}'\n")
    matrix = write_matrix(tmp_path, ["plain", str(sleepy)])
    results = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", str(matrix), "--results", str(results),
         "--no-progress", "--executor", executor, "--jobs", "1"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, as a shell gives a job
        preexec_fn=_sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert driver.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert len(err.strip().splitlines()) == 1, err  # no traceback, no resource-tracker warning
    assert "1 of 2 cell(s) finished (1 done)" in err and "same command" in err, err
    assert not _alive(worker)
    records = run_records(results)
    assert [r["objective"] for r in records.values()] == ["plain"]
    assert not [p for p in (results / "runs").iterdir() if p.name.startswith(".")]


DISK_FULL = """
import errno, multiprocessing, os
if multiprocessing.parent_process() is not None:  # in a worker only, not in the driver
    def _full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.fsync = _full
"""


def test_a_full_disk_inside_a_worker_stops_the_matrix_with_one_line(
        tmp_path: Path, plugin_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 20, item 9: the worker cannot write its run folder; the driver stops at once (the
    second cell would hit the same full disk), exit 2, one line naming the cause."""
    files = write_plugin(plugin_dir, "disk_full_plugin", DISK_FULL, {"disk_full": "# full"})
    matrix = write_matrix(tmp_path, ["plain", "margin"])
    results = tmp_path / "out"
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress",
                     "--gin_file", str(files["disk_full"])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device (ENOSPC)" in err, err
    assert not list((results / "runs").iterdir())  # nothing published, no staging left


def test_thread_count_is_recorded_and_listed(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress",
                     "--threads", "1") == 0
    (record,) = run_records(results).values()
    assert record["threads"] == 1
    capsys.readouterr()
    assert bench_cli("list", str(results)) == 0
    header, _, row = capsys.readouterr().out.splitlines()[:3]
    columns = [c.strip() for c in header.strip("|").split("|")]
    values = [c.strip() for c in row.strip("|").split("|")]
    assert values[columns.index("threads")] == "1"


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    previous = os.umask(umask)
    try:
        assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    finally:
        os.umask(previous)
    (run_id,) = run_records(results)
    expected = 0o666 & ~umask
    for name in ("run.json", "config.gin", "operative.gin", "metrics.parquet"):
        mode = stat.S_IMODE((results / "runs" / run_id / name).stat().st_mode)
        assert mode == expected, (name, oct(mode))
    for name in ("results.parquet", "runs.csv"):
        assert stat.S_IMODE((results / name).stat().st_mode) == expected, name


def test_submitit_resources_come_from_gin_with_defaults_per_scale() -> None:
    import bench.runner.matrix  # noqa: F401 - registers bench.matrix.Matrix, which matrix files bind
    from bench.runner.config import parsed, resolve

    defaults = {}
    for scale in ("smoke", "cpu", "paper"):
        with parsed([resolve("matrices", scale)]):
            defaults[scale] = Resources()
    assert defaults["smoke"].timeout_min < defaults["cpu"].timeout_min < defaults["paper"].timeout_min
    assert defaults["paper"].gpus_per_task == 1 and defaults["cpu"].gpus_per_task == 0
    params = submitit_parameters(Resources(timeout_min=30, gpus_per_task=2, cpus_per_task=4,
                                           mem_gb=16, partition="gpu", array_parallelism=8))
    assert params == {"timeout_min": 30, "gpus_per_node": 2, "cpus_per_task": 4, "mem_gb": 16,
                      "slurm_partition": "gpu", "slurm_array_parallelism": 8}
    assert "slurm_partition" not in submitit_parameters(Resources(partition=""))


# --- damaged data files are named; a failed cache write leaves nothing behind (issue 20) --------
def test_a_truncated_data_cache_file_names_the_cache_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from bench.tasks.dataset_cache import cached_dataset

    monkeypatch.setenv("DLC_BENCH_CACHE", str(tmp_path))

    def build() -> dict:
        return {"x": np.arange(2000, dtype=np.float32).reshape(1000, 2)}

    assert len(cached_dataset("toy", {"n": 1000}, build)) == 1000
    (arrow,) = tmp_path.glob("toy-*/*.arrow")
    arrow.write_bytes(arrow.read_bytes()[:-3000])
    with pytest.raises(RuntimeError, match=str(arrow.parent)):  # bench.tasks.dataset_cache.DamagedCache
        cached_dataset("toy", {"n": 1000}, build)


def test_a_full_disk_while_caching_leaves_no_temporary_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import datasets
    import numpy as np

    from bench.tasks.dataset_cache import cached_dataset

    monkeypatch.setenv("DLC_BENCH_CACHE", str(tmp_path))
    real = datasets.Dataset.save_to_disk

    def full_disk(self, path: str, **kwargs) -> None:
        real(self, path, **kwargs)  # something written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", full_disk)
    with pytest.raises(OSError, match="No space left"):
        cached_dataset("toy", {"n": 3}, lambda: {"x": np.zeros(3, dtype=np.float32)})
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_a_corrupt_gzipped_idx_and_a_garbage_hdf5_name_the_file(tmp_path: Path) -> None:
    import gzip

    from bench.tasks.registration.modelnet import load_modelnet40
    from bench.tasks.sequence.mnist import read_idx

    idx = tmp_path / "train-images-idx3-ubyte.gz"
    idx.write_bytes(gzip.compress(bytes(4 + 4 * 3 + 28 * 28 * 4))[:40])  # truncated gzip
    with pytest.raises(ValueError, match=str(idx)):
        read_idx(idx)
    idx.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=str(idx)):
        read_idx(idx)
    for name in ("ply_data_train0.h5", "ply_data_test0.h5"):
        (tmp_path / name).write_bytes(b"garbage, not HDF5" * 10)
    (tmp_path / "shape_names.txt").write_text("airplane\n")
    with pytest.raises(ValueError, match=str(tmp_path / "ply_data_train0.h5")):
        load_modelnet40(tmp_path, "train")
