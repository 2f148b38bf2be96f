"""Shared fixtures: an isolated data cache, offline Hugging Face, small torch thread counts."""

from __future__ import annotations

import os
import sys
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
