"""The task contract, BenchOpt-style, over EVERY task the catalog lists (`gin/tasks/*.gin`).

Each task is built as a cell builds it (smoke scale, its family's smoke sizes, its gin file) with
the first learned model of its family (`gin/models/`, by name) and the `dlc` objective, and must:

* give non-empty 'train', 'val' and 'test' splits ('val' refused where the task carves none);
* give a ground truth w* [N, ...] (N = B examples, or B x L positions for a per-position
  target), h(outputs, w) [K, N] finite at w*, a finite scalar objective whose gradients reach
  the model, solver iterates [T+1, N, ...] and distances [N] (0 at w*);
* leave w* where it is when its solver starts there on noise-free data (`Task.fixed_point`:
  bindings and a per-family tolerance the family justifies), or be DLC-style (no solver start).

Tasks that read local data (ModelNet40 HDF5, MNIST IDX, image folders) run on small generated
stand-in files written to `tmp_path` (`Task.stand_in`), never skipped. A new family is tested by
adding it. One task per family is in the fast suite (the first by name); the others are `slow`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import gin
import pytest
import torch

from bench.catalog import catalog
from bench.runner.config import parsed, resolve
from bench.runner.experiment import Experiment
from bench.runner.matrix import family_scale
from bench.runner.recorded_facts import registered_family
from bench.tasks.splits import SPLITS

B = 2  # examples per checked batch


def _params() -> list:
    tasks = [name for name, _ in catalog()["tasks"]]
    first: dict[str, str] = {}
    for task in tasks:
        first.setdefault(registered_family(task), task)
    fast = set(first.values())
    return [pytest.param(t, marks=() if t in fast else pytest.mark.slow) for t in tasks]


def _files(task: str, model: str | None = None) -> list[Path]:
    files = [resolve("scales", "smoke"), *family_scale("smoke", registered_family(task)),
             resolve("tasks", task), resolve("objectives", "dlc")]
    return files + ([resolve("models", model)] if model else [])


@functools.cache
def _model_family(model: str) -> tuple[str, bool]:
    """(family, learned) of the model class `gin/models/<model>.gin` binds, without building it."""
    with parsed([resolve("models", model)]):
        cls = gin.query_parameter("bench.run.Experiment.model").configurable.wrapped
    return str(cls.family), bool(cls.learned)


def _build(task: str, folder: Path, model: str | None = None,
           bindings: tuple[str, ...] = ()) -> Experiment:
    """The task's Experiment (stand-in files for local data written under `folder` once)."""
    with parsed(_files(task, model), bindings):
        exp = Experiment()
    local = exp.task.stand_in(folder) if exp.task.missing_data() else []
    if local:
        with parsed(_files(task, model), [*local, *bindings]):
            exp = Experiment()
    assert exp.task.missing_data() == "", exp.task.missing_data()
    return exp


def _learned_model(task: str, folder: Path) -> tuple[Experiment, str]:
    """The task with the first learned model of its family that it runs with, and its name."""
    family = registered_family(task)
    for model, _ in catalog()["models"]:
        if _model_family(model) == (family, True):
            exp = _build(task, folder, model)
            if not exp.skip()[0]:
                return exp, model
    raise AssertionError(f"no learned model of family {family!r} runs {task}")


def _batch(task, split: str, n: int = B) -> dict[str, torch.Tensor]:
    return task.dataset(split)[:n]


@pytest.mark.parametrize("name", _params())
def test_task_contract(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    exp, _ = _learned_model(name, tmp_path / "data")
    task, model = exp.task, exp.model
    assert task.family == task.facts.family == registered_family(name)
    for split in SPLITS:
        if split == "val" and task.val_fraction == 0:  # a protocol that trains on all of train
            with pytest.raises(ValueError, match="no validation split"):
                task.dataset(split)
        else:
            assert len(task.dataset(split)) > 0, split

    batch = _batch(task, "train")
    model.train()
    outputs = task.forward(model, batch)
    target = task.target(batch)
    n = target.shape[0]  # B examples (B x L for a per-position target: sequence_copy)
    assert n % B == 0 and torch.isfinite(target).all()
    at_truth = task.h(outputs, target[None])
    assert at_truth.shape == (1, n) and torch.isfinite(at_truth).all()
    around = task.space.retract(target, task.space.sample(target, 3))  # [3, B, ...] near w*
    assert around.shape[1:] == target.shape and task.h(outputs, around).shape == (3, n)

    exp.objective.setup(task)
    loss = exp.objective(task, model, outputs, batch).loss
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0  # the objective reaches the model

    model.eval()
    with torch.no_grad():
        outputs = task.forward(model, batch)
        iterates = task.solve(model, outputs, batch)
    assert iterates.shape[0] >= 2 and iterates.shape[1:] == target.shape
    assert torch.isfinite(iterates).all()
    distance = task.space.distance(iterates[-1], target)
    assert distance.shape == (n,) and torch.isfinite(distance).all() and (distance >= 0).all()
    assert float(task.space.distance(target, target).abs().max()) < 1e-3


@pytest.mark.parametrize("name", _params())
def test_solver_started_at_the_truth_stays_there(name: str, tmp_path: Path) -> None:
    """On noise-free data (the family's `fixed_point` bindings, applied after the learned model's
    file: they may bind another model), w* is a fixed point of the test-time solver within the
    family's tolerance; a task without one is DLC-style."""
    exp, learned = _learned_model(name, tmp_path / "data")
    point = exp.task.fixed_point
    if point is None:
        assert exp.task.dlc_style, f"{type(exp.task).__name__}: a solver needs a fixed_point"
        return
    exp = _build(name, tmp_path / "data", learned, point.bindings)  # bindings may swap the model
    task, model = exp.task, exp.model
    batch = _batch(task, "test", 4)
    model.eval()
    with torch.no_grad():
        outputs = task.forward(model, batch)
        target = task.target(batch)
        iterates = task.solve(model, outputs, batch, start=target)
    assert torch.equal(iterates[0], target)
    moved = float(task.space.distance(iterates[-1], target).max())
    assert moved <= point.tolerance, f"{name}: the solver left w* by {moved:.3g} ({point.why})"
