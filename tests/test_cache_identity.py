"""What enters a cell's cache key, and which bindings win (through bench.runner.matrix's public API).

The key decides whether a finished run is reused, so it must change with everything that can
change a result (seed, each binding, their order, the package version) and nothing else.
"""

from __future__ import annotations

from pathlib import Path

import gin
import pytest

import bench.runner.identity
from bench.runner.config import parsed_text
from bench.runner.identity import training_key
from bench.runner.matrix import Matrix, expand_cells

WEIGHT = "bench.objectives.DLC.weight"


def keys(tmp_path: Path, bindings=(), seeds=(0,), gin_bindings=(), gin_files=()) -> list[str]:
    matrix = Matrix(tasks=["alignment1d_nonlinear"], models=["conv1d"], objectives=["dlc"],
                    seeds=list(seeds), scale="smoke", bindings=list(bindings))
    cells = expand_cells(matrix, tmp_path / "results", gin_files, gin_bindings)
    return [cell.key for cell in cells]


def test_training_key_changes_with_text_seed_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    base = training_key("a = 1\n", 0)
    assert len(base) == 64 and int(base, 16) >= 0  # a sha256 hex digest
    assert training_key("a = 1\n", 0) == base
    assert training_key("a = 1\n", 1) != base
    assert training_key("a = 2\n", 0) != base
    monkeypatch.setattr(bench.runner.identity, "__version__", "999.0")
    assert training_key("a = 1\n", 0) != base


def test_cell_keys_change_with_seed_each_binding_and_binding_order(tmp_path: Path) -> None:
    a, b = f"{WEIGHT} = 0.5", "bench.objectives.DLC.samples = 2"
    k0, k1 = keys(tmp_path, [a, b], seeds=(0, 1))
    assert k0 != k1  # seed
    assert keys(tmp_path, [a, b]) == [k0]  # deterministic
    assert keys(tmp_path, [b]) != [k0]  # drop a
    assert keys(tmp_path, [a]) != [k0]  # drop b
    assert keys(tmp_path, [f"{WEIGHT} = 0.25", b]) != [k0]  # change a's value
    assert keys(tmp_path, [b, a]) != [k0]  # order (later wins in gin, so order is meaning)
    assert keys(tmp_path, [a], gin_bindings=[b]) == [k0]  # matrix + command line, same order


def test_command_line_bindings_win_over_matrix_bindings(tmp_path: Path) -> None:
    matrix = Matrix(tasks=["alignment1d_nonlinear"], models=["conv1d"], objectives=["dlc"],
                    seeds=[0], scale="smoke", bindings=[f"{WEIGHT} = 0.5"])
    (cell,) = expand_cells(matrix, tmp_path, (), [f"{WEIGHT} = 2.0"])
    with parsed_text(cell.config_text):
        assert gin.query_parameter(WEIGHT) == 2.0
    (plain,) = expand_cells(matrix, tmp_path)
    with parsed_text(plain.config_text):
        assert gin.query_parameter(WEIGHT) == 0.5  # the matrix binding beats the objective file


def extra_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_cell_key_changes_with_an_extra_gin_file(tmp_path: Path) -> None:
    one = extra_file(tmp_path, "one.gin", f"{WEIGHT} = 0.5\n")
    two = extra_file(tmp_path, "two.gin", f"{WEIGHT} = 0.75\n")
    assert keys(tmp_path, gin_files=[one]) != keys(tmp_path, gin_files=[two])
    assert keys(tmp_path, gin_files=[one]) != keys(tmp_path)


def test_cell_key_ignores_whitespace_and_comments(tmp_path: Path) -> None:
    plain = extra_file(tmp_path, "a.gin", f"{WEIGHT} = 0.5\n")
    styled = extra_file(tmp_path, "b.gin", f"# a comment\n\n{WEIGHT} = 0.5   \n\n")
    assert keys(tmp_path, gin_files=[plain]) == keys(tmp_path, gin_files=[styled])


def test_task_family_is_read_from_the_bound_task_class(tmp_path: Path) -> None:
    from bench.runner.config import ConfigError, resolve
    from bench.runner.matrix import task_family

    task = resolve("tasks", "alignment1d_nonlinear")
    assert task_family([task], []) == "alignment1d"
    other = "bench.run.Experiment.task = @bench.tasks.registration.Registration()"
    assert task_family([task], [other]) == "registration"  # the bindings are read too
    first = extra_file(tmp_path, "first.gin", "# nothing bound\n")
    second = extra_file(tmp_path, "second.gin", "# nothing bound either\n")
    with pytest.raises(ConfigError, match=r"first\.gin: no task bound"):
        task_family([Path(first), Path(second)], [])
