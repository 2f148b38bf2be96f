"""Fine-tuning from another cell's weights (`init_from`), learning-rate schedules, clipping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.runner.cell_runner import waves
from bench.runner.checkpoint import FILENAME, read
from bench.runner.experiment import Experiment
from bench.runner.matrix import expand_cells, load_matrix
from tests.conftest import bench_cli, run_records, write_matrix


def _cells(folder: Path, objectives: list[str], extra: list[str] = ()):
    matrix = load_matrix(write_matrix(folder, objectives, seeds=[0, 1], extra=list(extra)))[0]
    return expand_cells(matrix, folder / "results")


def test_init_from_adds_the_parent_first_and_its_key_enters_the_child(tmp_path: Path) -> None:
    cells = _cells(tmp_path, ["dlc_ft"])
    by_objective = {(c.objective, c.seed): c for c in cells}
    assert set(by_objective) == {("plain", 0), ("plain", 1), ("dlc_ft", 0), ("dlc_ft", 1)}
    for seed in (0, 1):
        child, parent = by_objective["dlc_ft", seed], by_objective["plain", seed]
        assert child.parent == parent.run_id and parent.parent == ""
        assert parent.key in child.config_text
    first, second = waves(cells)
    assert {c.objective for c in first} == {"plain"} and {c.objective for c in second} == {"dlc_ft"}
    # a different parent (plain with another lr) changes the child's identity, not its own text
    (tmp_path / "b").mkdir()
    other = _cells(tmp_path / "b", ["dlc_ft"], ["bench.run.Experiment.lr = 0.002"])
    child_b = next(c for c in other if c.objective == "dlc_ft" and c.seed == 0)
    assert child_b.key != by_objective["dlc_ft", 0].key


def test_a_fine_tuned_cell_starts_from_its_parents_final_weights(tmp_path: Path) -> None:
    frozen = tmp_path / "frozen_ft.gin"  # fine-tuning with lr 0: the weights must stay the parent's
    frozen.write_text("include 'objectives/plain.gin'\n"
                      "bench.run.Experiment.init_from = 'plain'\n"
                      "bench.run.Experiment.lr = 0.0\n")
    matrix = write_matrix(tmp_path, ["plain", str(frozen), "dlc_ft"])
    assert bench_cli("run", str(matrix), "--results", str(tmp_path / "r"), "--no-progress") == 0
    records = {r["objective"]: r for r in run_records(tmp_path / "r").values()}
    plain, child = records["plain"], records["frozen_ft"]
    assert plain["status"] == child["status"] == records["dlc_ft"]["status"] == "done"
    assert child["init_from"] == {"run_id": plain["run_id"], "key": plain["key"]}
    assert records["dlc_ft"]["init_from"]["run_id"] == plain["run_id"]
    assert child["dlc_form"] == {"family": "alignment1d", "h": "energy", "base": "method",
                                 "dlc_style": False}
    runs = tmp_path / "r" / "runs"
    parent_weights, meta = read(runs / plain["run_id"] / FILENAME)
    assert meta["key"] == plain["key"]
    child_weights, _ = read(runs / child["run_id"] / FILENAME)
    fresh_weights, _ = read(runs / records["dlc_ft"]["run_id"] / FILENAME)
    model_keys = [k for k in parent_weights if k.startswith("model.")]
    assert model_keys and set(model_keys) == {k for k in child_weights if k.startswith("model.")}
    for key in model_keys:
        assert torch.equal(parent_weights[key], child_weights[key]), key
    assert any(not torch.equal(parent_weights[k], fresh_weights[k]) for k in model_keys)


def test_a_child_whose_parent_is_missing_fails_with_a_clear_reason(tmp_path: Path) -> None:
    from dataclasses import replace

    from bench.runner.run import run_cell

    cells = _cells(tmp_path, ["dlc_ft"])
    child = next(c for c in cells if c.objective == "dlc_ft")
    outcome = run_cell(replace(child, results=str(tmp_path / "empty")))
    assert outcome["status"] == "failed"
    assert f"init_from cell {child.parent} is not done" in outcome["reason"]


def _lrs(schedule: str, epochs: int, **kw) -> list[float]:
    model = nn.Linear(2, 1)
    exp = Experiment(task=None, model=model, objective=None, lr=0.1, epochs=epochs,
                     schedule=schedule, **kw)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = exp.scheduler(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules_follow_their_formulas() -> None:
    cosine = _lrs("cosine", 4)  # 0.1 (1 + cos(pi e / 4)) / 2
    expected = [0.1, 0.1 * (1 + math.sqrt(0.5)) / 2, 0.05, 0.1 * (1 - math.sqrt(0.5)) / 2]
    assert cosine == pytest.approx(expected)
    step = _lrs("step", 8, schedule_gamma=0.5, schedule_milestones=(0.5, 0.75))
    assert step == pytest.approx([0.1] * 4 + [0.05] * 2 + [0.025] * 2)
    with pytest.raises(ValueError, match="schedule must be None, 'cosine' or 'step'"):
        Experiment(task=None, model=None, objective=None, schedule="linear")


def test_clipping_is_by_norm_then_by_value() -> None:
    p = nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])  # norm 5
    Experiment(task=None, model=None, objective=None, grad_clip=1.0).clip([p])
    assert p.grad.tolist() == pytest.approx([0.6, 0.8])
    Experiment(task=None, model=None, objective=None, grad_clip_value=0.7).clip([p])
    assert p.grad.tolist() == pytest.approx([0.6, 0.7])
