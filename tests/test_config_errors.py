"""Malformed configs: one clear error naming the file and line, and nothing written; gin state is
scoped by `bench.runner.config.parsed`."""

from __future__ import annotations

from pathlib import Path

import gin
import pytest

from bench.catalog import catalog
from bench.runner.config import GIN_ROOT, ConfigError, expand, parsed, resolve, validate
from bench.runner.experiment import Experiment
from bench.runner.matrix import family_scale, task_family
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
    # issue 20, item 10: these were 36-92 line tracebacks
    "not_utf8": (
        b"# caf\xe9 au lait\nbench.run.Experiment.lr = 0.1\n",
        ["line 1", "not UTF-8", "0xe9"],
    ),
    "import_missing_module": (
        "bench.run.Experiment.lr = 0.1\nimport no_such_module_here\n",
        ["line 2", "import", "no_such_module_here"],
    ),
    "undefined_macro": (
        "# comment\nbench.run.Experiment.lr = %NOT_DEFINED\n",
        ["line 2", "%NOT_DEFINED", "never defined"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_names_file_and_line_and_writes_nothing(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    text, expected = CASES[case]
    bad = tmp_path / f"{case}.gin"
    bad.write_bytes(text if isinstance(text, bytes) else text.encode())
    matrix = write_matrix(tmp_path, ["dlc"])
    results = tmp_path / "out"
    code = bench_cli("run", str(matrix), "--results", str(results), "--gin_file", str(bad),
                     "--no-progress")
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
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


def test_catalog_names_a_gin_file_that_is_not_utf8(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """Issue 20, item 10: `catalog` crashed with a UnicodeDecodeError naming no file."""
    (tmp_path / "tasks").mkdir()
    bad = tmp_path / "tasks" / "latin1.gin"
    bad.write_bytes(b"# A task\n# caf\xe9\nbench.run.Experiment.lr = 0.1\n")
    with pytest.raises(ConfigError, match=r"latin1.gin, line 2: not UTF-8"):
        catalog(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bench.runner.config.GIN_ROOT", tmp_path)
        capsys.readouterr()
        assert bench_cli("catalog") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{bad}, line 2" in err, err


# --- issue 21, item 4: gin is scoped explicitly and read at the edges --------------------------
def test_validate_leaves_gin_clear_and_parsed_owns_the_parse() -> None:
    files = [resolve("scales", "smoke"), resolve("tasks", "alignment1d_nonlinear"),
             resolve("models", "conv1d"), resolve("objectives", "plain")]
    validate(files, ["bench.run.Experiment.epochs = 2"])
    assert gin.config_str().strip() == "" and not gin.config._CONFIG_IS_LOCKED
    with pytest.raises(RuntimeError, match="inside"):
        with parsed(files, ["bench.run.Experiment.epochs = 2"]):
            assert gin.query_parameter("bench.run.Experiment.epochs") == 2
            raise RuntimeError("an error inside the block")
    assert gin.config_str().strip() == "" and not gin.config._CONFIG_IS_LOCKED


def test_the_split_fraction_is_read_when_the_experiment_is_built() -> None:
    """`bench.tasks.splits.carve.fraction` is read where the Experiment is built (the driver,
    run_cell), not by data loading, which may run after gin is cleared."""
    files = [resolve("scales", "smoke"), resolve("tasks", "alignment1d_nonlinear"),
             resolve("models", "conv1d"), resolve("objectives", "plain")]
    sizes = ["bench.tasks.alignment1d.Alignment1D.n_train = 40",
             "bench.tasks.alignment1d.Alignment1D.n_test = 8"]
    with parsed(files, [*sizes, "bench.tasks.splits.carve.fraction = 0.5"]):
        task = Experiment().task
    assert len(task.dataset("val")) == 20 and len(task.dataset("train")) == 20
    with parsed(files, [*sizes, "bench.tasks.splits.carve.fraction = 1.5"]):
        with pytest.raises(ValueError, match="carve.fraction must be 0 or in"):
            Experiment()
