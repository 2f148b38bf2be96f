"""Training identity apart from evaluation identity (`bench.runner.identity`): a change of metrics,
landscape settings or evaluation batch size re-evaluates saved weights and retrains nothing;
`bench evaluate MATRIX|RESULTS` re-evaluates finished runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import bench.runner.run
from bench.runner.cell_runner import plan, run_cells
from bench.runner.config import setup_gin
from bench.runner.identity import cell_keys, split_config, statements
from bench.runner.matrix import expand_cells, load_matrix
from tests.conftest import bench_cli, run_records, write_matrix

ALIGN = "bench.tasks.alignment1d.Alignment1D"


def test_statements_are_split_by_what_their_configurable_declares() -> None:
    setup_gin()
    text = (f"bench.run.Experiment.lr = 0.1\nbench.run.Experiment.landscape_rays = 3\n"
            f"{ALIGN}.metrics = [@bench.metrics.Distance()]\n{ALIGN}.mu = 2.0\n"
            "s1/bench.metrics.SuccessRate.threshold = 1.0\nRATE = 3\n"
            "unknown.Thing.param = 1\n")
    kinds = {normal.split(" = ")[0]: kind for kind, normal in statements(text)}
    assert kinds == {"bench.run.Experiment.lr": "training",
                     "bench.run.Experiment.landscape_rays": "evaluation",
                     f"{ALIGN}.metrics": "evaluation", f"{ALIGN}.mu": "training",
                     "s1/bench.metrics.SuccessRate.threshold": "evaluation",
                     "RATE": "training", "unknown.Thing.param": "training"}


def test_keys_ignore_layout_and_follow_each_part() -> None:
    setup_gin()
    block = "bench.run.Experiment:\n    lr = 0.1   # a comment\n\n    landscape_rays = 3\n"
    flat = "bench.run.Experiment.lr = 0.1\nbench.run.Experiment.landscape_rays=3\n"
    assert cell_keys(block, 0) == cell_keys(flat, 0)
    key, train, evaluate = cell_keys(flat, 0)
    other_eval = cell_keys(flat.replace("rays=3", "rays=4"), 0)
    assert other_eval[1] == train and other_eval[2] != evaluate and other_eval[0] != key
    other_train = cell_keys(flat.replace("0.1", "0.2"), 0)
    assert other_train[1] != train and other_train[2] == evaluate
    assert cell_keys(flat, 1)[1] != train  # the seed is training identity
    assert cell_keys(flat, 0, "parent")[1] != train
    assert split_config(flat) == ("bench.run.Experiment.lr = 0.1\n",
                                  "bench.run.Experiment.landscape_rays = 3\n")


def _cells(tmp_path: Path, extra: list[str] = ()) -> list:
    matrix = write_matrix(tmp_path, ["plain"], extra=list(extra))
    return expand_cells(load_matrix(matrix)[0], tmp_path / "results")


def _frame(results: Path, run_id: str) -> pd.DataFrame:
    return pd.read_parquet(results / "runs" / run_id / "metrics.parquet")


@pytest.mark.slow  # trains and re-evaluates a cell: about 4 s
def test_a_new_metric_reevaluates_saved_weights_and_trains_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    (first,) = _cells(tmp_path)
    run_cells(plan([first]))
    weights = (results / "runs" / first.run_id / "weights.safetensors").read_bytes()
    before = _frame(results, first.run_id)

    metrics = (f"{ALIGN}.metrics = [@bench.metrics.Distance(), @bench.metrics.SpuriousMinimum()]")
    (changed,) = _cells(tmp_path, [metrics])
    assert changed.run_id == first.run_id and changed.train_key == first.train_key
    assert changed.key != first.key
    (todo,) = plan([changed]).todo
    assert todo.evaluate_only

    def no_training(*args, **kwargs):
        raise AssertionError("a re-evaluation must not train")

    monkeypatch.setattr(bench.runner.run, "train", no_training)
    outcome = bench.runner.run.run_cell(todo)  # in this process, so the patch holds
    assert outcome["status"] == "done", outcome["reason"]
    record = run_records(results)[first.run_id]
    assert record["key"] == changed.key and record["evaluated_from"]["key"] == first.key
    assert (results / "runs" / first.run_id / "weights.safetensors").read_bytes() == weights
    after = _frame(results, first.run_id)
    train = [f[f.phase == "train"].reset_index(drop=True) for f in (before, after)]
    pd.testing.assert_frame_equal(train[0], train[1])
    assert set(after[after.phase == "test"].metric) == {"distance", "spurious_minimum"}
    # the metric both evaluations share has the same values: evaluation is reproducible
    shared = [f[(f.phase == "test") & (f.metric == "distance")].value.tolist()
              for f in (before, after)]
    assert shared[0] == shared[1]
    assert plan([changed]).todo == []  # done now


def test_a_training_change_still_retrains(tmp_path: Path) -> None:
    (first,) = _cells(tmp_path)
    run_cells(plan([first]))
    (changed,) = _cells(tmp_path, ["bench.run.Experiment.lr = 0.002"])
    assert changed.run_id != first.run_id
    (todo,) = plan([changed]).todo
    assert not todo.evaluate_only


def test_evaluate_verb_reevaluates_a_results_folder_as_saved(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    results = tmp_path / "results"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    (run_id, before), = run_records(results).items()
    rows = _frame(results, run_id)
    capsys.readouterr()
    assert bench_cli("evaluate", str(results), "--no-progress") == 0
    assert "1 run(s) to re-evaluate" in capsys.readouterr().out
    after = run_records(results)[run_id]
    assert after["key"] == before["key"] and after["evaluated_from"]["key"] == before["key"]
    pd.testing.assert_frame_equal(_frame(results, run_id), rows)  # same weights, same numbers
    # a matrix with a changed evaluation setting: only that re-evaluates; nothing to train
    changed = write_matrix(tmp_path, ["plain"], extra=["bench.run.Experiment.landscape_rays = 2"])
    assert bench_cli("evaluate", str(changed), "--results", str(results), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "1 run(s) to re-evaluate" in out and "not trained" not in out
