"""bench.runner.matrix piece by piece: every field of an expanded cell, fine-tuning parents, skip reasons,
budget and seed checks with their exact messages, matrix parts and the keys.

Expected values are written out here (file lists, run ids, messages), not read back from the
code under test; keys are recomputed from the documented recipe `cell_keys(text, seed, parent_train_key)`.
"""

from __future__ import annotations

from pathlib import Path

import gin
import pytest

from bench.runner.config import GIN_ROOT, ConfigError
from bench.runner.identity import cell_keys, training_key
from bench.runner.matrix import (
    MAX_SEED,
    Matrix,
    check_seeds,
    expand_cells,
    family_scale,
    load_matrix,
    load_resources,
    task_family,
)

TASK, MODEL = "alignment1d_nonlinear", "conv1d"
LR = "bench.run.Experiment.lr = 0.002"
CLIP = "bench.run.Experiment.grad_clip_value = 0.5"


@gin.configurable(module="tests.matrix_units")
class TaskWithoutFamily:
    """A plugin task class that declares no `family` (does not derive from `Task`)."""


def matrix(objectives: list[str], models: list[str] = (MODEL,), **kwargs) -> Matrix:
    return Matrix(tasks=[TASK], models=list(models), objectives=list(objectives),
                  seeds=kwargs.pop("seeds", [3]), scale="smoke", **kwargs)


def gin_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def smoke_files(objective: str) -> list[str]:
    return [str(GIN_ROOT / "scales" / "smoke.gin"), str(GIN_ROOT / "scales/smoke/alignment1d.gin"),
            str(GIN_ROOT / "tasks" / f"{TASK}.gin"), str(GIN_ROOT / "models" / f"{MODEL}.gin"),
            str(GIN_ROOT / "objectives" / f"{objective}.gin")]


def test_every_field_of_a_fine_tuned_cell_and_its_parent(tmp_path: Path) -> None:
    extra = "scales/smoke/alignment1d"  # relative to gin/, without the suffix
    cells = expand_cells(matrix(["dlc_ft"], bindings=[LR], timeout=7, seeds=[4, 3]),
                         tmp_path / "res", gin_files=[extra], gin_bindings=[CLIP], device="cpu")
    # per seed, the parent first
    assert [(c.objective, c.seed) for c in cells] == [("plain", 4), ("dlc_ft", 4), ("plain", 3),
                                                      ("dlc_ft", 3)]
    parent, child = cells[2:]
    for cell, objective in ((parent, "plain"), (child, "dlc_ft")):
        assert cell.run_id == f"{TASK}-{MODEL}-{objective}-s3-{cell.train_key[:8]}"
        assert (cell.task, cell.model, cell.seed, cell.scale) == (TASK, MODEL, 3, "smoke")
        assert type(cell.seed) is int and type(cell.timeout) is float and cell.timeout == 7.0
        assert cell.results == str(tmp_path / "res") and cell.device == "cpu"
        assert cell.family == "alignment1d" and cell.skip_reason == ""
        assert cell.bindings == (LR, CLIP)  # the matrix's, then the command line's
        assert cell.files == (*smoke_files(objective), str(GIN_ROOT / f"{extra}.gin"))
    assert parent.parent == "" and child.parent == parent.run_id
    assert parent.config_text.endswith(f"# --- binding\n{LR}\n# --- binding\n{CLIP}\n")
    assert child.config_text.endswith(
        f"# --- binding\n{CLIP}\n# --- init_from {parent.run_id} key={parent.key}\n")
    assert (parent.key, parent.train_key, parent.eval_key) == cell_keys(parent.config_text, 3)
    assert (child.key, child.train_key, child.eval_key) == cell_keys(child.config_text, 3,
                                                                     parent.train_key)
    (default,) = expand_cells(matrix(["plain"]), tmp_path)
    assert default.device == "auto" and default.timeout == 0.0 and default.bindings == ()
    assert default.files == tuple(smoke_files("plain"))


def test_a_child_of_a_skipped_parent_is_skipped_with_the_parents_reason(tmp_path: Path) -> None:
    child_file = gin_file(tmp_path, "child.gin", "include 'objectives/plain.gin'\n"
                                                 "bench.run.Experiment.init_from = 'dlc_prise'\n")
    parent, child = expand_cells(matrix([str(child_file)]), tmp_path)
    assert (parent.objective, child.objective) == ("dlc_prise", "child")
    assert parent.skip_reason.startswith("this DLC preset applies to task families ['homography']")
    assert child.skip_reason == f"its init_from cell {parent.run_id} is skipped: " \
                                f"{parent.skip_reason}"
    # a cell skipped on its own (a model of another family) adds no parent and keeps its reason
    (alone,) = expand_cells(matrix(["dlc_ft"], models=["deeplk"]), tmp_path)
    assert alone.parent == "" and alone.skip_reason == (
        "model DeepLKFeatures is for task family 'homography', task Alignment1D is 'alignment1d'")


def test_two_levels_of_fine_tuning_are_refused(tmp_path: Path) -> None:
    grandchild = gin_file(tmp_path, "gc.gin", "include 'objectives/plain.gin'\n"
                                              "bench.run.Experiment.init_from = 'dlc_ft'\n")
    with pytest.raises(ConfigError) as err:
        expand_cells(matrix([str(grandchild)]), tmp_path)
    assert str(err.value) == (
        f"cell (task={TASK}, model={MODEL}, objective={grandchild}): its init_from objective "
        "'dlc_ft' has init_from 'plain' itself; one level of fine-tuning is supported")


@pytest.mark.parametrize("axis", ["tasks", "models", "objectives", "seeds"])
def test_an_empty_axis_is_refused(axis: str, tmp_path: Path) -> None:
    axes = {"tasks": [TASK], "models": [MODEL], "objectives": ["plain"], "seeds": [0], axis: []}
    with pytest.raises(ConfigError) as err:
        expand_cells(Matrix(scale="smoke", **axes), tmp_path)
    assert str(err.value) == "a matrix needs at least one task, model, objective and seed"


def test_seed_range_and_type(tmp_path: Path) -> None:
    check_seeds([0, MAX_SEED], "here")
    assert MAX_SEED == 2**32 - 1
    for bad in (-1, MAX_SEED + 1, True, "1", 1.0):
        with pytest.raises(ConfigError) as err:
            check_seeds([0, bad], "here")
        assert str(err.value) == f"here: seed {bad!r}: expected an integer in [0, 4294967295]"
    with pytest.raises(ConfigError, match=r"^bench\.matrix\.Matrix\.seeds: seed -1: "):
        expand_cells(matrix(["plain"], seeds=[-1]), tmp_path)


def test_budget_errors_name_the_binding_or_the_file_line(tmp_path: Path) -> None:
    epochs = "bench.run.Experiment.epochs = 0"
    with pytest.raises(ConfigError) as err:
        expand_cells(matrix(["plain"]), tmp_path, gin_bindings=[epochs])
    assert str(err.value) == (
        f"--gin_bindings {epochs!r}: {epochs}: expected >= 1 (0 only for a model with nothing "
        "to learn, `learned = False`, e.g. ICP)")
    for name in ("batch_size", "eval_batch_size"):
        bad = gin_file(tmp_path, f"{name}.gin", f"# sizes\nbench.run.Experiment.{name} = 0\n")
        with pytest.raises(ConfigError) as err:
            expand_cells(matrix(["plain"]), tmp_path, gin_files=[str(bad)])
        assert str(err.value) == (f"{bad}, line 2: bench.run.Experiment.{name} = 0: "
                                  "expected >= 1")
    ones = ["bench.run.Experiment.epochs = 1", "bench.run.Experiment.batch_size = 1",
            "bench.run.Experiment.eval_batch_size = 1"]
    assert expand_cells(matrix(["plain"]), tmp_path, gin_bindings=ones)[0].skip_reason == ""
    # a skipped cell is not checked: it never trains
    (skipped,) = expand_cells(matrix(["plain"], models=["deeplk"]), tmp_path, gin_bindings=[epochs])
    assert skipped.skip_reason


def test_zero_epochs_only_for_a_model_with_nothing_to_learn(tmp_path: Path) -> None:
    icp = Matrix(tasks=["registration_synthetic_dcp"], models=["icp"], objectives=["plain"],
                 seeds=[0], scale="smoke")
    (cell,) = expand_cells(icp, tmp_path, gin_bindings=["bench.run.Experiment.epochs = 0"])
    assert cell.skip_reason == ""
    with pytest.raises(ConfigError, match=r"epochs = -1: expected >= 1 \(0 only"):
        expand_cells(icp, tmp_path, gin_bindings=["bench.run.Experiment.epochs = -1"])


def test_a_cell_that_does_not_build_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        expand_cells(matrix(["dlc"]), tmp_path, gin_bindings=["bench.objectives.DLC.samples = 0"])
    assert str(err.value) == (f"cell (task={TASK}, model={MODEL}, objective=dlc) does not build: "
                              "ValueError: samples must be an int >= 1, got 0")


def write_part(folder: Path, name: str, body: str = "") -> Path:
    return gin_file(folder, name, f"bench.matrix.Matrix.tasks = ['{TASK}']\n"
                                  f"bench.matrix.Matrix.models = ['{MODEL}']\n"
                                  "bench.matrix.Matrix.objectives = ['plain']\n" + body)


def test_parts_inherit_the_parents_sweep_and_timeout_unless_they_set_their_own(
        tmp_path: Path) -> None:
    own = write_part(tmp_path, "own.gin", "bench.matrix.Matrix.sweep = 'sweeps/mine.gin'\n"
                                          "bench.matrix.Matrix.timeout = 5\n")
    top = gin_file(tmp_path, "top.gin",
                   f"bench.matrix.Matrix.parts = ['cpu_tuned/alignment1d.gin', '{own}']\n"
                   "bench.matrix.Matrix.sweep = 'sweeps/smoke.gin'\n"
                   "bench.matrix.Matrix.timeout = 60\n")
    shipped, mine = load_matrix(top)
    (alone_part,) = load_matrix(GIN_ROOT / "matrices" / "cpu_tuned" / "alignment1d.gin")
    assert shipped.tasks == alone_part.tasks and shipped.scale == alone_part.scale
    assert (shipped.sweep, shipped.timeout) == ("sweeps/smoke.gin", 60)
    assert (mine.sweep, mine.timeout) == ("sweeps/mine.gin", 5)
    (alone,) = load_matrix(own)  # a matrix without parts is its own single part
    assert alone.objectives == ["plain"] and alone.seeds == (0,)


def test_resources_are_read_from_the_matrix_file(tmp_path: Path) -> None:
    path = write_part(tmp_path, "m.gin", "bench.executors.Resources.cpus_per_task = 3\n"
                                         "bench.executors.Resources.partition = 'gpu'\n")
    resources = load_resources(path)
    assert (resources.cpus_per_task, resources.partition, resources.timeout_min) == (3, "gpu", 60)


def test_a_cycle_of_parts_is_named_with_its_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.gin", tmp_path / "b.gin"
    a.write_text(f"bench.matrix.Matrix.parts = ['{b}']\n")
    b.write_text(f"bench.matrix.Matrix.parts = ['{a}']\n")
    with pytest.raises(ConfigError) as err:
        load_matrix(a)
    assert str(err.value) == f"{a}: matrix parts cycle: {a} -> {b} -> {a}"


def test_family_scale_file_only_for_a_known_family() -> None:
    assert family_scale("smoke", "alignment1d") == [GIN_ROOT / "scales/smoke/alignment1d.gin"]
    assert family_scale("smoke", "") == []
    assert family_scale("smoke", "no_such_family") == []


def test_task_family_of_a_class_without_one(tmp_path: Path) -> None:
    binding = "bench.run.Experiment.task = @tests.matrix_units.TaskWithoutFamily()"
    assert task_family([GIN_ROOT / "tasks" / f"{TASK}.gin"], [binding]) == ""


def test_the_parent_key_enters_the_key_without_replacing_the_text() -> None:
    assert training_key("a = 1\n", 0) == training_key("a = 1\n", 0, "")
    assert training_key("a = 1\n", 0, "p") != training_key("a = 1\n", 0, "q")
    assert training_key("a = 1\n", 0, "p") != training_key("a = 2\n", 0, "p")
    assert training_key("a = 1\n", 0, "p") != training_key("a = 1\n", 0)
