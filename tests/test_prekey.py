"""Pre-keys (`bench.runner.prekey`, `bench.runner.cached_cells`): a fully cached `run` builds nothing and imports
no torch, and the pre-key notices every edit that changes a cell (issue 21, item 6)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runner import prekey
from bench.runner.cached_cells import cached_cells
from bench.runner.matrix import Matrix, expand_cells
from tests.conftest import REPO, TINY, bench_cli, write_matrix

A1D = "bench.tasks.alignment1d.Alignment1D"


def _files(folder: Path) -> dict[str, str]:
    """A cell whose every file is a copy we can edit: the task file includes a file that includes
    another; the objective fine-tunes from a parent objective file of ours."""
    return {
        "deep.gin": f"{A1D}.n_test = 32\n",
        "task_base.gin": f"include '{folder}/deep.gin'\n{A1D}.noise = 0.05\n",
        "task.gin": f"include 'tasks/alignment1d_nonlinear.gin'\ninclude '{folder}/task_base.gin'\n",
        "model.gin": "include 'models/conv1d.gin'\n",
        "parent.gin": "include 'objectives/plain.gin'\n",
        "objective.gin": f"include 'objectives/dlc.gin'\nbench.run.Experiment.init_from = "
                         f"'{folder}/parent.gin'\n",
        "scale.gin": "include 'scales/smoke.gin'\ninclude 'scales/smoke/alignment1d.gin'\n",
    }


def _matrix(folder: Path, seeds: list[int], bindings: list[str]) -> Matrix:
    return Matrix(tasks=[str(folder / "task.gin")], models=[str(folder / "model.gin")],
                  objectives=[str(folder / "objective.gin")], seeds=seeds,
                  scale=str(folder / "scale.gin"), bindings=bindings)


def _index(folder: Path, edit: tuple[str, str, str] | None = None, seeds: list[int] = (0,),
           bindings: list[str] = TINY) -> dict[str, dict]:
    """pre-key -> entry of every cell (fine-tuned child and its parent) after `edit` (file, old
    text, new text) of `_files`, written over the files of the same names in `folder`."""
    folder.mkdir(exist_ok=True)
    files = _files(folder)
    if edit is not None:
        name, old, new = edit
        assert old in files[name], (name, old)
        files[name] = files[name].replace(old, new)
    for name, text in files.items():
        (folder / name).write_text(text)
    found: dict[str, dict] = {}
    expand_cells(_matrix(folder, list(seeds), list(bindings)), folder / "r", prekeys=found)
    assert {e["objective"] for e in found.values()} == {"objective", "parent"}  # child + parent
    return found


EDITS = {  # each changes what the cell trains or how it is evaluated
    "an include's include": ("deep.gin", "n_test = 32", "n_test = 48"),
    "an included file": ("task_base.gin", "noise = 0.05", "noise = 0.1"),
    "the task file (a metric only)": (
        "task.gin", "\n", f"\n{A1D}.metrics = [@bench.metrics.Distance()]\n"),
    "the model file": ("model.gin", "\n", "\nbench.tasks.alignment1d.ConvFeatures.width = 8\n"),
    "the objective file": ("objective.gin", "\n", "\nbench.objectives.DLC.weight = 0.5\n"),
    "the parent's objective file": ("parent.gin", "\n", "\nbench.run.Experiment.lr = 0.002\n"),
    "the scale file": ("scale.gin", "\n", "\nbench.run.Experiment.grad_clip = 2.0\n"),
    "an include swapped": ("scale.gin", "smoke/alignment1d", "cpu/alignment1d"),
}


def test_the_prekey_notices_every_edit_that_changes_a_cell(tmp_path: Path) -> None:
    """A cell is found by its pre-key and, when fine-tuned, its parent's (`cached_cells`)."""
    def lookups(found: dict[str, dict]) -> dict[tuple[str, str], dict]:
        return {(key, entry["parent_prekey"]): entry for key, entry in found.items()}

    folder = tmp_path / "m"  # the same paths every time: only the texts change
    base = lookups(_index(folder))
    seen = dict(base)  # every look-up met, with its cell: never two cells for one look-up
    variants = {name: _index(folder, edit) for name, edit in EDITS.items()}
    variants["a binding"] = _index(folder, bindings=[*TINY, "bench.run.Experiment.lr = 0.01"])
    variants["the seed"] = _index(folder, seeds=[1])
    variants["a comment"] = _index(folder, ("task_base.gin", "\n", "\n# a comment\n\n"))
    for name, found in variants.items():
        found = lookups(found)
        for key, entry in found.items():
            assert seen.setdefault(key, entry) == entry, f"{name}: one pre-key, two cells"
        if name == "a comment":
            continue  # a comment changes no cell: it may hit or miss, but never a wrong cell
        child = next(e for e in found.values() if e["objective"] == "objective")
        base_child = next(e for e in base.values() if e["objective"] == "objective")
        assert child["key"] != base_child["key"], f"{name}: the edit should change the cell"
        assert not set(found) & {k for k, e in base.items() if e["objective"] == "objective"}, \
            f"{name}: the child's look-up did not change"


def test_the_family_files_of_the_scale_are_part_of_the_prekey(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """Which family file a cell reads is decided by its task class, so all of them count:
    editing, adding or removing one changes the pre-key."""
    monkeypatch.setattr(prekey, "GIN_ROOT", tmp_path)
    family = tmp_path / "scales" / "tiny"
    family.mkdir(parents=True)
    (family / "a.gin").write_text("x.y = 1\n")
    cell = tmp_path / "cell.gin"
    cell.write_text("x.z = 1\n")
    keys = [prekey.combination_prekey("tiny", [cell], [], ("t", "m", "o"))]
    (family / "a.gin").write_text("x.y = 2\n")
    keys.append(prekey.combination_prekey("tiny", [cell], [], ("t", "m", "o")))
    (family / "b.gin").write_text("")
    keys.append(prekey.combination_prekey("tiny", [cell], [], ("t", "m", "o")))
    (family / "a.gin").unlink()
    keys.append(prekey.combination_prekey("tiny", [cell], [], ("t", "m", "o")))
    assert len(set(keys)) == 4


def test_cached_cells_are_the_built_cells_until_a_file_changes(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    found = _index(folder)
    results = folder / "r"
    results.mkdir()
    prekey.record(results, found)
    matrix = _matrix(folder, [0], TINY)
    built = expand_cells(matrix, results)
    cached = cached_cells([matrix], results)
    fields = ("run_id", "key", "train_key", "eval_key", "skip_reason", "parent", "family")
    assert [tuple(getattr(c, f) for f in fields) for c in cached] == \
        [tuple(getattr(c, f) for f in fields) for c in built]
    # the parent edited, and its new pre-key in the index (another matrix ran it): the child's
    # entry names the parent it was built with, so it misses
    edited = _index(folder, EDITS["the parent's objective file"])
    for entry in found.values():  # `record` keeps entries whose run folder is there
        (results / "runs" / entry["run_id"]).mkdir(parents=True)
    prekey.record(results, {k: e for k, e in edited.items() if e["objective"] == "parent"})
    assert len(prekey.read_index(results)) == 3
    assert cached_cells([matrix], results) is None


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a one-cell matrix `tiny.gin` and its finished results `r/`."""
    folder = tmp_path_factory.mktemp("finished")
    matrix = write_matrix(folder, ["plain"])
    assert bench_cli("run", str(matrix), "--results", str(folder / "r"), "--no-progress") == 0
    return folder


def _copy(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(matrix, results) of a copy of `finished` (the matrix's paths are its own)."""
    shutil.copytree(finished, tmp_path, dirs_exist_ok=True)
    return tmp_path / "tiny.gin", tmp_path / "r"


def _rerun(matrix: Path, results: Path, *extra: str) -> tuple[str, str]:
    """`run` in a fresh process: (stdout, stderr); stdout ends with the modules it imported."""
    code = ("import sys\nfrom bench.cli import main\n"
            f"rc = main(['run', {str(matrix)!r}, '--results', {str(results)!r}, '--no-progress', "
            f"*{list(extra)!r}])\n"
            "print('rc', rc, sorted(m for m in ('torch', 'pandas') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=True)
    return done.stdout, done.stderr


@pytest.mark.slow  # a matrix run in a module fixture: 3-4 s
def test_a_cached_rerun_builds_nothing_and_sees_a_matrix_edit(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    matrix, results = _copy(finished, tmp_path)
    index = (results / prekey.INDEX).read_text()
    out, _ = _rerun(matrix, results)
    assert "1 cells: 1 done" in out and out.strip().endswith("rc 0 []"), out
    assert (results / prekey.INDEX).read_text() == index

    def dry_run() -> str:
        capsys.readouterr()
        assert bench_cli("run", str(matrix), "--results", str(results), "--dry-run") == 0
        return capsys.readouterr().out

    text = matrix.read_text()
    matrix.write_text(text.replace("epochs = 1", "epochs = 2"))  # a binding of the matrix file
    assert "1 cells: 1 to run" in dry_run()
    matrix.write_text(text + "# a comment\n")
    assert "1 cells: 1 done" in dry_run()
    assert (results / prekey.INDEX).read_text() == index  # --dry-run reads only
    (results / "runs.csv").unlink()  # tables older than the run folders (or gone) are rebuilt
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert (results / "runs.csv").is_file()


@pytest.mark.slow  # a matrix run in a module fixture: 3-4 s
def test_a_damaged_index_is_named_and_ignored(finished: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    matrix, results = _copy(finished, tmp_path)
    path = results / prekey.INDEX
    good = json.loads(path.read_text())
    entry = next(iter(good["entries"].values()))
    other = {**good, "entries": {k: {**e, "key": "0" * 64} for k, e in good["entries"].items()}}
    for damage in ("{not json", json.dumps(other), json.dumps({**good, "format": "x"})):
        path.write_text(damage)
        capsys.readouterr()
        assert bench_cli("run", str(matrix), "--results", str(results), "--dry-run") == 0
        captured = capsys.readouterr()
        assert f"ignoring the pre-key index {path}" in captured.err, captured.err
        assert "1 cells: 1 done" in captured.out and path.read_text() == damage
    # a damaged index is replaced by the next `run` that writes
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert prekey.read_index(results) == good["entries"]
    # an index that reads well but names a key the run folder does not hold: never "done" on
    # its word; the cell is built (never run as the stand-in) and found done
    forged = {k: {**e, "key": "0" * 64} for k, e in good["entries"].items()}
    path.write_text(json.dumps({"format": prekey.FORMAT, "checksum": prekey._sha(forged),
                                "entries": forged}))
    capsys.readouterr()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert "1 cells: 1 done" in capsys.readouterr().out
    assert prekey.read_index(results) == good["entries"]
    # a hit whose run folder is gone: the cell is built and run again, with its whole config
    run = results / "runs" / entry["run_id"]
    for child in run.iterdir():
        child.unlink()
    run.rmdir()
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    assert "Experiment" in (run / "config.gin").read_text()


def test_the_code_fingerprint_reads_every_source_file(tmp_path: Path, monkeypatch) -> None:
    """The fingerprint hashes the source of bench/ and dlc/ (a moved module must not take it
    to another folder): every module of both packages counts, and an edit to any one changes it."""
    for package in ("bench", "dlc"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(prekey, "_REPO", tmp_path)
    prekey.code_fingerprint.cache_clear()
    before = prekey.code_fingerprint()
    for edited in ("bench/runner/matrix.py", "bench/tasks/base.py", "dlc/loss.py"):
        path = tmp_path / edited
        path.write_text(path.read_text() + "\n# an edit\n")
        prekey.code_fingerprint.cache_clear()
        assert prekey.code_fingerprint() != before, edited
        before = prekey.code_fingerprint()
    monkeypatch.undo()
    prekey.code_fingerprint.cache_clear()
    sources = sorted(p for package in ("bench", "dlc") for p in (REPO / package).rglob("*.py"))
    assert prekey._REPO == REPO and len(sources) > 80  # the real tree, every module of both
