"""Shared fixtures and helpers: an isolated data cache, offline Hugging Face, small torch thread
counts; `bench_cli`, and `write_matrix` / `run_records` for tiny end-to-end matrices."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    os.environ.setdefault("DLC_BENCH_CACHE", str(tmp_path_factory.mktemp("data-cache")))
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path and PYTHONPATH (so spawned workers see it too) for user modules."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(folder), str(REPO), os.environ.get("PYTHONPATH", "")]))
    return folder


def bench_cli(*args: str) -> int:
    """Run `python -m bench ...` in this process; returns its exit code."""
    from bench.cli import main

    return main(list(args))


def python() -> str:
    return sys.executable


TINY = [
    "bench.run.Experiment.epochs = 1",
    "bench.run.Experiment.batch_size = 32",
    "bench.run.Experiment.landscape_examples = 8",
    "bench.run.Experiment.landscape_rays = 4",
    "bench.run.Experiment.landscape_points = 4",
    "bench.tasks.alignment1d.Alignment1D.n_train = 64",
    "bench.tasks.alignment1d.Alignment1D.n_test = 32",
    "bench.tasks.alignment1d.Alignment1D.iterations = 4",
]


def write_matrix(folder: Path, objectives: list[str], seeds: list[int] = (0,),
                 models: list[str] = ("conv1d",), tasks: list[str] = ("alignment1d_nonlinear",),
                 extra: list[str] = (), tiny: list[str] = TINY) -> Path:
    """A smoke-scale matrix file with the `tiny` budget bindings (+ `extra`) for every cell."""
    path = folder / "tiny.gin"
    bindings = ",\n        ".join(repr(b) for b in [*tiny, *extra])
    path.write_text(textwrap.dedent(f"""\
        bench.matrix.Matrix.tasks = {list(tasks)!r}
        bench.matrix.Matrix.models = {list(models)!r}
        bench.matrix.Matrix.objectives = {list(objectives)!r}
        bench.matrix.Matrix.seeds = {list(seeds)!r}
        bench.matrix.Matrix.scale = 'smoke'
        bench.matrix.Matrix.bindings = [
            {bindings}]
        """))
    return path


def write_weights(path: Path) -> Path:
    """A valid, empty weights file (what a done run folder needs besides its text files)."""
    from safetensors.numpy import save_file

    save_file({}, str(path), metadata={"format": "dlc-bench-weights/1"})
    return path


def run_records(results: Path) -> dict[str, dict]:
    """Every run.json under `results/runs`, by run folder name."""
    return {p.parent.name: json.loads(p.read_text()) for p in (results / "runs").glob("*/run.json")}


def write_plugin(plugin_dir: Path, module: str, source: str,
                 bodies: dict[str, str]) -> dict[str, Path]:
    """Write the user module `<module>.py` (`source`) into `plugin_dir` and one gin file per
    entry of `bodies` (`import <module>` + the body); returns {name: gin file}."""
    (plugin_dir / f"{module}.py").write_text(source)
    files = {}
    for name, body in bodies.items():
        files[name] = plugin_dir / f"{name}.gin"
        files[name].write_text(f"import {module}\n{body}\n")
    return files
