"""Every argument of every verb is checked before anything runs (issue 10, class 3; issue 20,
items 7 and 9): one line, exit 2, nothing written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.runner.config import resolve
from tests.conftest import REPO, bench_cli, write_matrix
from tests.test_tune import write_tuning

# (command-line arguments after `run MATRIX --results DIR`, a word the message must contain)
BAD_ARGUMENTS = {
    "seeds_word": (["--seeds", "a"], "--seeds"),
    "seeds_float": (["--seeds", "1.5"], "--seeds"),
    "seeds_negative": (["--seeds", "-1"], "--seeds"),
    "seeds_huge": (["--seeds", "99999999999999999999"], "--seeds"),
    "jobs_zero": (["--jobs", "0"], "--jobs"),
    "jobs_negative": (["--jobs", "-3"], "--jobs"),
    "ray_jobs_zero": (["--executor", "ray", "--jobs", "0"], "--jobs"),
    "device_banana": (["--device", "banana"], "--device"),
    "device_cuda_index": (["--device", f"cuda:{torch.cuda.device_count() + 7}"], "--device"),
    "threads_negative": (["--threads", "-2"], "--threads"),
    "timeout_negative": (["--timeout", "-5"], "--timeout"),
    "binding_syntax": (["--gin_bindings", "bench.run.Experiment.epochs = (1"], "--gin_bindings"),
    "epochs_zero": (["--gin_bindings", "bench.run.Experiment.epochs = 0"], "epochs"),
    "epochs_negative": (["--gin_bindings", "bench.run.Experiment.epochs = -1"], "epochs"),
    "objective_rejects": (["--gin_bindings", "bench.objectives.DLC.terms = ('t2', 't4')",
                           "--objectives", "dlc"], "t4"),
}
if not torch.cuda.is_available():
    BAD_ARGUMENTS["device_cuda"] = (["--device", "cuda"], "--device")


@pytest.mark.parametrize("name", sorted(BAD_ARGUMENTS))
def test_bad_run_arguments_are_one_line_errors_and_write_nothing(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args, word = BAD_ARGUMENTS[name]
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "out"
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err, err
    assert "None, line" not in err
    assert not results.exists()


def test_a_results_path_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    path = tmp_path / "results.txt"
    path.write_text("mine")
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(path), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.txt" in err, err
    assert path.read_text() == "mine"


def test_a_matrix_whose_parts_include_itself(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    matrix = tmp_path / "loop.gin"
    matrix.write_text(f"bench.matrix.Matrix.parts = ['{matrix}']\n")
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "loop.gin" in err and "cycle" in err, err
    assert not (tmp_path / "out").exists()


def test_string_seeds_in_a_matrix_name_the_expected_type(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = tmp_path / "m.gin"
    matrix.write_text(write_matrix(tmp_path, ["plain"]).read_text().replace("[0]", "['0']"))
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert "seeds" in err and "expected Sequence[int]" in err and "m.gin, line 4" in err, err
    assert not (tmp_path / "out").exists()


def test_a_binding_syntax_error_names_the_binding(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"),
                     "--gin_bindings", "bench.run.Experiment.lr = = 3") == 2
    err = capsys.readouterr().err.strip()
    assert "--gin_bindings 'bench.run.Experiment.lr = = 3'" in err, err


def test_zero_epochs_is_fine_for_a_model_with_nothing_to_train(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain"], models=["icp"], tasks=["registration_synthetic_dcp"],
                          tiny=["bench.run.Experiment.landscape_examples = 0",
                                "bench.tasks.registration.Registration.n_train = 8",
                                "bench.tasks.registration.Registration.n_test = 8"])
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"), "--dry-run") == 0


# --- issue 20, item 7: one argument checker for every verb -------------------------------------
BAD_TUNE_ARGUMENTS = {
    "jobs_zero": (["--jobs", "0"], "--jobs"),
    "jobs_negative": (["--jobs", "-1"], "--jobs"),
    "device_banana": (["--device", "banana"], "--device"),
    "device_cuda_index": (["--device", f"cuda:{torch.cuda.device_count() + 7}"], "--device"),
    "threads_negative": (["--threads", "-3"], "--threads"),
    "estimate_missing": (["--estimate", "no/such/folder"], "--estimate"),
}


@pytest.mark.parametrize("name", sorted(BAD_TUNE_ARGUMENTS))
def test_bad_tune_arguments_are_one_line_errors_and_write_nothing(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args, word = BAD_TUNE_ARGUMENTS[name]
    matrix = write_tuning(tmp_path / "plan")
    out = tmp_path / "out"
    capsys.readouterr()
    assert bench_cli("tune", str(matrix), "--out", str(out), "--dry-run", *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and word in err, err
    assert not out.exists()


def test_a_bad_sweep_leaves_no_tuning_folder_and_no_lock(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_tuning(tmp_path / "plan")
    sweep = tmp_path / "plan" / "sweep.gin"
    sweep.write_text(sweep.read_text().replace("DLC.weight", "DLC.wieght"))
    out = tmp_path / "out"
    capsys.readouterr()
    assert bench_cli("tune", str(matrix), "--out", str(out), "--phase", "tune") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wieght" in err and "sweep.gin" in err, err
    assert not (out / ".tune.lock").exists() and not out.exists()


def test_help_of_every_verb_imports_neither_torch_nor_pandas() -> None:
    """`--help` answers without the heavy imports (issue 21, item 6; times in README Performance)."""
    code = ("import sys\nfrom bench.cli import main\n"
            "for verb in ([], ['run'], ['tune'], ['report'], ['list'], ['collect'], ['catalog']):\n"
            "    assert main([*verb, '--help']) == 0\n"
            "print(sorted(m for m in ('torch', 'pandas', 'numpy') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-300:]


# --- issue 20, item 9: file-system problems named before any cell runs (--dry-run included) ----
def _refused(capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert bench_cli("run", *args, "--no-progress", "--dry-run") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_results_runs_that_is_a_file_is_named(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "out"
    results.mkdir()
    (results / "runs").write_text("not a folder")
    err = _refused(capsys, str(write_matrix(tmp_path, ["plain"])), "--results", str(results))
    assert str(results / "runs") in err and "not a folder" in err, err
    assert (results / "runs").read_text() == "not a folder"


def test_a_read_only_file_system_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    real = os.statvfs

    def read_only(path):  # what statvfs says on a file system mounted read-only
        found = real(path)
        fields = [found.f_bsize, found.f_frsize, found.f_blocks, found.f_bfree, found.f_bavail,
                  found.f_files, found.f_ffree, found.f_favail, found.f_flag | os.ST_RDONLY,
                  found.f_namemax]
        return os.statvfs_result(fields)

    monkeypatch.setattr(os, "statvfs", read_only)
    err = _refused(capsys, str(write_matrix(tmp_path, ["plain"])), "--results",
                   str(tmp_path / "out"))
    assert "read-only file system" in err and "EROFS" in err, err
    assert not (tmp_path / "out").exists()


def test_erofs_while_writing_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """The check passes but the first write fails (EROFS, not PermissionError): one line, 2."""
    results = tmp_path / "out"
    real = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == results:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    matrix = write_matrix(tmp_path, ["plain"])
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "EROFS" in err and str(results) in err, err


def test_a_run_id_longer_than_a_file_name_is_refused(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    task = tmp_path / ("t" * 230 + ".gin")  # a legal file name; the run id adds model, objective
    task.write_text(resolve("tasks", "alignment1d_nonlinear").read_text())
    matrix = write_matrix(tmp_path, ["plain"], tasks=[str(task)])
    err = _refused(capsys, str(matrix), "--results", str(tmp_path / "out"))
    assert "bytes" in err and "shorten" in err, err
    assert not (tmp_path / "out").exists()


def test_a_results_path_with_bytes_that_are_not_utf8(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    results = os.fsdecode(os.fsencode(tmp_path) + b"/out\xff")
    err = _refused(capsys, str(write_matrix(tmp_path, ["plain"])), "--results", results)
    assert "--results" in err and "not UTF-8" in err and "\\xff" in err, err
    assert not os.path.exists(results)
