"""Malformed configs: one clear error naming the file and line, and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import GIN_ROOT, ConfigError, expand, resolve, validate
from bench.matrix import family_scale, task_family
from tests.conftest import bench_cli, write_matrix

CASES = {
    "unknown_configurable": (
        "bench.run.Experiment.epochs = 1\nbench.objectives.NotAThing.samples = 3\n",
        ["No configurable matching 'bench.objectives.NotAThing'", "line 2"],
    ),
    "misspelt_parameter": (
        "bench.objectives.DLC.sample = 3\n",
        ["doesn't have a parameter named 'sample'", "did you mean bench.objectives.DLC.samples?",
         "line 1"],
    ),
    "missing_include": (
        "# a comment\ninclude 'objectives/no_such_file.gin'\n",
        ["include 'objectives/no_such_file.gin' not found", "line 2"],
    ),
    "unclosed_bracket": (
        "bench.objectives.DLC.terms = ('t1', 't2'\n",
        ["line", "unclosed bracket"],
    ),
    "syntax_error": (
        "bench.run.Experiment.epochs = 3 3\n",
        ["syntax error", "line 1"],
    ),
    "wrong_value_type": (
        "bench.run.Experiment.lr = 0.1\nbench.run.Experiment.eval_batch_size = 'ten'\n",
        ["line 2", "bench.run.Experiment.eval_batch_size = 'ten'", "expected int, got str"],
    ),
    "wrong_literal": (
        "bench.objectives.DLC.aggregate = 'mean'\n",
        ["line 1", "aggregate = 'mean'", "expected"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_names_file_and_line_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text, expected = CASES[case]
    bad = tmp_path / f"{case}.gin"
    bad.write_text(text)
    matrix = write_matrix(tmp_path, ["dlc"])
    results = tmp_path / "out"
    code = bench_cli("run", str(matrix), "--results", str(results), "--gin_file", str(bad),
                     "--no-progress")
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err, err
    for fragment in expected:
        assert fragment in err, (fragment, err)
    assert not results.exists()


def test_bad_binding_on_the_command_line_is_named(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    matrix = write_matrix(tmp_path, ["plain"])
    code = bench_cli("run", str(matrix), "--results", str(tmp_path / "o"),
                     "--gin_bindings", "bench.run.Experiment.batch_size = 2.5")
    assert code == 2
    err = capsys.readouterr().err
    assert "--gin_bindings 'bench.run.Experiment.batch_size = 2.5'" in err
    assert "expected int, got float" in err


def test_unknown_axis_name_suggests_the_closest(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="did you mean 'dlc_max'"):
        resolve("objectives", "dlc_mx")


@pytest.mark.slow  # builds a cell for every shipped gin file
def test_every_shipped_gin_file_parses_in_a_cell() -> None:
    """Each task/model/objective/scale file composes into a valid cell with the others."""
    for scale in ("smoke", "cpu", "paper"):
        for task in sorted((GIN_ROOT / "tasks").glob("*.gin")):
            family = task_family([resolve("scales", scale), task], ())
            assert family_scale(scale, family), f"{task}: no gin/scales/{scale}/{family}.gin"
            for model in sorted((GIN_ROOT / "models").glob("*.gin")):
                validate([resolve("scales", scale), *family_scale(scale, family), task, model,
                          resolve("objectives", "dlc")])
        for objective in sorted((GIN_ROOT / "objectives").glob("*.gin")):
            validate([resolve("scales", scale), resolve("tasks", "alignment1d_nonlinear"),
                      resolve("models", "conv1d"), objective])
    for path in sorted((GIN_ROOT / "scales").glob("*.gin")):
        assert "# --- file:" in expand([path])


def test_include_expansion_is_inlined_in_order(tmp_path: Path) -> None:
    text = expand([resolve("objectives", "dlc_max")])
    assert text.index("objectives/dlc.gin") < text.index("aggregate = 'max'")
    assert "include" not in text.replace("# --- file", "")
