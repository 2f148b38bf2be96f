"""Which kind of results a folder holds: a `bench run` results folder (tables and run folders) or
a `bench tune` folder (`trials.json`, `trials/t*/`, `selected/`, `final/`, its sweep file), so
that a command meant for one kind never writes into, or reads as empty, the other."""

from __future__ import annotations

from pathlib import Path

#: the copy of the sweep file that `bench tune` keeps in its folder (what `report` reads)
SWEEP_COPY = "sweep.gin"


def is_tune_folder(path: Path) -> bool:
    """True for a folder written by `bench tune` (its trial manifest or its selected configs)."""
    path = Path(path)
    return (path / "trials.json").is_file() or (path / "selected").is_dir()


def tune_hint(path: Path) -> str:
    """Where the runs of a tuning folder are, for `list` and the refusals."""
    return (f"{path} is a tuning folder (`bench tune`): the winners' runs are in {path}/final/ "
            f"and each trial's in {path}/trials/t*/ (e.g. `python -m bench list {path}/final`); "
            f"`python -m bench report {path}` writes its protocol report")
