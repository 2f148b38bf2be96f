"""The newcomer's CLI: what can be run, --tasks on a matrix with parts, progress labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.catalog import catalog, first_comment, format_catalog
from bench.cli import _label, build_parser, main
from bench.runner.config import ConfigError
from bench.runner.matrix import Matrix, restrict_tasks


def test_catalog_lists_every_axis_with_its_comment(tmp_path: Path) -> None:
    for axis in ("tasks", "models", "objectives", "scales", "matrices"):
        (tmp_path / axis).mkdir()
    (tmp_path / "tasks" / "toy_a.gin").write_text(
        "\n# A toy task (Smith et al. 2020) with a\n# wrapped comment. Second sentence.\nx.y = 1\n")
    (tmp_path / "models" / "net.gin").write_text("x.y = 2  # no leading comment\n")
    entries = catalog(tmp_path)
    assert entries["tasks"] == [("toy_a", "A toy task (Smith et al. 2020) with a wrapped comment.")]
    assert entries["models"] == [("net", "")]
    assert "tasks:\n  toy_a  A toy task" in format_catalog(entries)
    long = tmp_path / "long.gin"
    long.write_text("# " + "word " * 50 + "\n")
    assert first_comment(long, limit=20) == "word word word word …"


def test_catalog_verb_lists_the_shipped_gin_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    for name in ("alignment1d_same", "conv1d", "dlc_adversarial", "smoke", "cpu"):
        assert f"  {name} " in out
    assert "The task's original loss, nothing added." in out  # plain.gin's comment


def test_tasks_on_a_matrix_with_parts_keep_each_family_apart() -> None:
    parts = [Matrix(tasks=["alignment1d_nonlinear"], models=["conv1d"], objectives=["plain"]),
             Matrix(tasks=["sequence_adding", "sequence_copy"], models=["rnn", "gru"],
                    objectives=["plain", "dlc"])]
    kept = restrict_tasks(parts, ["sequence_digits", "alignment1d_same"], Path("m.gin"))
    assert [(p.tasks, list(p.models)) for p in kept] == [
        (["alignment1d_same"], ["conv1d"]), (["sequence_digits"], ["rnn", "gru"])]
    assert parts[1].tasks == ["sequence_adding", "sequence_copy"]  # inputs untouched
    only = restrict_tasks(parts, ["tasks/sequence_copy.gin"], Path("m.gin"))
    assert len(only) == 1 and only[0].models == ["rnn", "gru"]
    with pytest.raises(ConfigError, match=r"m.gin: --tasks homography_synthetic_same: no part"):
        restrict_tasks(parts, ["homography_synthetic_same"], Path("m.gin"))


def test_progress_label_shows_objective_and_seed() -> None:
    class Cell:
        task, model, objective, seed = "alignment1d_nonlinear_energy", "conv1d", "dlc_max", 8

    assert _label(Cell(), "ignored") == "alignment1d_nonlinear_energy conv1d dlc_max s8"
    assert _label(None, "run-id") == "run-id"


def test_run_options_have_help_texts() -> None:
    run = next(a for a in build_parser()._subparsers._group_actions[0].choices.values()
               if a.prog.endswith(" run"))
    helps = {a.dest: a.help for a in run._actions}
    assert "sequential" in helps["executor"] and "local" in helps["executor"]
    assert "cuda:N" in helps["device"]
    assert "progress" in helps["no_progress"]


def test_report_on_a_folder_without_tables_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}/runs.parquet: no runs table and no run folders" in err
    assert not (tmp_path / "report").exists() and not (tmp_path / "results.parquet").exists()
