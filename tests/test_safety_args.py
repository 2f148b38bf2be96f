"""Every argument is checked before anything runs (issue 10, class 3): one line, exit 2, nothing
written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import bench_cli, write_matrix

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
