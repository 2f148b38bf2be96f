"""A table row pools runs of one config only, and a cell's name says which files it ran (issue 20,
items 1-3): config identities (`bench.runner.pooling`), axis file names, matrix values checked up front.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bench.runner.matrix import expand_cells, load_matrix
from tests.conftest import REPO, bench_cli, run_records, write_matrix, write_weights


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    return err


# --- 1. a report never averages runs of different configs --------------------------------------
@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(matrix, results) of one config run on seeds 0 and 1; copy the results before changing."""
    folder = tmp_path_factory.mktemp("two-seeds")
    matrix = write_matrix(folder, ["plain"], seeds=[0, 1])
    assert bench_cli("run", str(matrix), "--results", str(folder / "out"), "--no-progress") == 0
    return matrix, folder / "out"


def test_a_report_refuses_a_row_whose_seeds_ran_different_configs(
        two_seeds: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix, reference = two_seeds
    results = shutil.copytree(reference, tmp_path / "out")
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress", "--seeds", "1",
                     "--gin_bindings", "bench.run.Experiment.batch_size = 16") == 0
    live = run_records(results)
    assert len(live) == 3  # seed 1's first run is superseded; seed 0 (old) and 1 (new) are live
    capsys.readouterr()
    assert bench_cli("report", str(results), "--out", str(tmp_path / "report")) == 2
    err = one_line_error(capsys)
    assert "alignment1d_nonlinear/conv1d/plain" in err and "2 configs" in err
    assert "`bench.run.Experiment.batch_size = 16`" in err  # the differing binding, named
    assert not (tmp_path / "report").exists()


def test_older_runs_get_their_config_identity_from_config_gin(
        two_seeds: tuple[Path, Path], tmp_path: Path) -> None:
    """A run.json written before `config_id` existed: the runs table derives the same id."""
    from bench.runner.result_tables import read_tables

    results = shutil.copytree(two_seeds[1], tmp_path / "out")
    recorded = {r["run_id"]: r["config_id"] for r in run_records(results).values()}
    assert len(recorded) == 2 and len(set(recorded.values())) == 1  # one config, two seeds
    for run_id in recorded:
        path = results / "runs" / run_id / "run.json"
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if k != "config_id"}))
    _, runs = read_tables(results)
    assert dict(zip(runs["run_id"], runs["config_id"])) == recorded


def test_config_identity_leaves_out_the_seed_but_not_a_parent_binding(tmp_path: Path) -> None:
    """Fine-tuning children of one config share an identity across seeds (so `*_ft` rows pool);
    a changed parent binding changes the child's identity; training and evaluation settings
    both count."""
    from bench.runner.pooling import config_id

    part = replace(load_matrix(write_matrix(tmp_path, ["plain_ft"], seeds=[0, 1]))[0])
    cells = expand_cells(part, tmp_path / "out")
    children = [c for c in cells if c.objective == "plain_ft"]
    parents = [c for c in cells if c.objective == "plain"]
    assert len(children) == len(parents) == 2
    assert children[0].key != children[1].key  # seeded keys differ
    assert children[0].config_id == children[1].config_id
    assert parents[0].config_id == parents[1].config_id != children[0].config_id
    # the child's identity is its own text with its parent's identity (not the parent's key)
    own = children[0].config_text.split("# --- init_from")[0]
    assert children[0].config_id == config_id(own, parents[0].config_id)
    assert config_id(own, "another parent") != children[0].config_id
    for binding in ("bench.run.Experiment.lr = 0.005",  # training
                    "bench.run.Experiment.eval_batch_size = 7"):  # evaluation
        other = expand_cells(part, tmp_path / "out", (), [binding])
        assert {c.config_id for c in other}.isdisjoint({c.config_id for c in cells})


def test_a_trial_folder_report_labels_its_metrics_validation(tmp_path: Path) -> None:
    """A tuning trial folder (`bench tune`) holds validation metrics only: its tables show them,
    labelled as validation, never as test."""
    from bench.report import write_report
    from bench.runner.store import RunWriter

    for objective in ("plain", "dlc"):
        for seed in range(2):
            ident = dict(run_id=f"alignment1d_a-conv1d-{objective}-s{seed}", task="alignment1d_a",
                         model="conv1d", objective=objective, seed=seed)
            writer = RunWriter(tmp_path, ident["run_id"])
            writer.write_metrics([{**ident, "phase": "val", "step": 3, "metric": "distance",
                                   "value": 1.0 + seed + (objective == "dlc")}])
            for name in ("config.gin", "operative.gin"):
                writer.write_text(name, "# fake\n")
            write_weights(writer.stage / "weights.safetensors")
            writer.publish({**ident, "status": "done", "scale": "smoke",
                            "metric_directions": {"distance": "min"}})
    index = write_report(tmp_path).joinpath("index.md").read_text()
    assert "**Final validation metrics: " in index and "final validation metrics" in index
    assert "test metrics" not in index and "test split" not in index


# --- 2. a run id never starts with "." ---------------------------------------------------------
def test_a_task_file_named_with_a_leading_dot_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    hidden = tmp_path / ".hidden.gin"
    shutil.copy(REPO / "gin" / "tasks" / "alignment1d_nonlinear.gin", hidden)
    matrix = write_matrix(tmp_path, ["plain"], tasks=[str(hidden)])
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"), "--no-progress") == 2
    assert ".hidden.gin" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_a_run_writer_refuses_a_run_id_that_reads_as_staging(tmp_path: Path) -> None:
    from bench.runner.store import RunWriter

    for run_id in (".x-s0-abc", "", "a/b"):
        with pytest.raises(ValueError, match="run id"):
            RunWriter(tmp_path, run_id)
    assert not (tmp_path / "runs").exists()


# --- 3. two axis files with one name -----------------------------------------------------------
def test_two_objective_files_with_one_name_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "plain.gin").write_text(
        (REPO / "gin" / "objectives" / "plain.gin").read_text()
        + "bench.run.Experiment.lr = 0.5\n")
    matrix = write_matrix(tmp_path, ["plain", str(elsewhere / "plain.gin")])
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"), "--no-progress") == 2
    err = one_line_error(capsys)
    assert str(elsewhere / "plain.gin") in err and str(REPO / "gin/objectives/plain.gin") in err
    assert not (tmp_path / "out").exists()


# --- matrix values refused when the matrix is checked, not when a cell runs ----------------------
@pytest.mark.parametrize("extra, where", [
    (["bench.run.Experiment.lr = -0.01"], "bench.run.Experiment.lr = -0.01"),
])
def test_a_negative_learning_rate_is_refused_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], where: str) -> None:
    matrix = write_matrix(tmp_path, ["plain"], extra=extra)
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"), "--dry-run") == 2
    assert where in one_line_error(capsys)


def test_a_negative_matrix_timeout_is_refused_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    matrix.write_text(matrix.read_text() + "bench.matrix.Matrix.timeout = -5\n")
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "out"), "--dry-run") == 2
    assert "bench.matrix.Matrix.timeout = -5" in one_line_error(capsys)
