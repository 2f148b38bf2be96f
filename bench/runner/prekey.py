"""Pre-keys: a cell's identity read from its raw config text, so that a cached cell needs no build.

A cell's real keys (`bench.runner.identity`) need gin parsed with every configurable registered (torch
imported) and the cell's `Experiment` built. Its *pre-key* hashes what those keys are computed
from, as raw text: the scale, task, model and objective files and any extra gin file with every
`include` inlined by reading files (`bench.runner.config.expand`, no gin parsing), every family file of
the scale (`gin/scales/<scale>/*.gin`: which one a cell uses is decided by its task class), the
bindings, the file names (the run id holds them), the seed, and the code that turns them into keys
(the source of `bench/` and `dlc/`, the package version, Python's and gin's versions). Equal
inputs give equal keys, so a pre-key determines the cell's real keys, run id and skip reason.

`bench run` records that map in `<results>/prekeys.json`, the index (`record`: atomic, only by a
command that writes), each time it builds cells, and looks cells up there before building
(`bench.runner.cached_cells`). An edit to any input changes the pre-key (a miss: the cell is built and the
new pre-key recorded); a comment-only edit of a cell's file misses too, harmlessly. A fine-tuned
cell's entry names its parent's pre-key, which must match as well. An index that does not read back
as written (not JSON, another format, entries that do not match its checksum or lack a field) is
named on stderr and ignored, never trusted.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import __version__
from bench.runner.config import GIN_ROOT, expand
from bench.runner.store import atomic_write_text, runs_dir

INDEX = "prekeys.json"
FORMAT = "dlc-bench pre-key index 1"
#: what an index entry holds: the cell's identity (`bench.runner.cell.Cell` fields) and, for a fine-tuned
#: cell, its parent's pre-key and the objective it starts from (`Experiment.init_from`)
FIELDS = {"run_id": str, "key": str, "train_key": str, "eval_key": str, "skip_reason": str,
          "task": str, "model": str, "objective": str, "seed": int, "scale": str, "family": str,
          "parent": str, "parent_prekey": str, "init_from": str}
_REPO = Path(__file__).resolve().parents[2]


def _sha(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the source of `bench/` and `dlc/` (paths and bytes), with Python's and gin's
    versions: the code that turns a config into keys, skip reasons and run ids."""
    digest = hashlib.sha256(f"{sys.version}\ngin-config {metadata.version('gin-config')}".encode())
    for path in sorted(p for package in ("bench", "dlc") for p in (_REPO / package).rglob("*.py")):
        digest.update(f"\n{path.relative_to(_REPO)}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def combination_prekey(scale: str, files: Sequence[Path], bindings: Sequence[str],
                       names: Sequence[str]) -> str:
    """Pre-key of a (task, model, objective) combination: `files` (scale, task, model, objective
    and extra gin files, includes inlined), the family files of `scale`, `bindings` and the run
    id's `names`. Raises `bench.runner.config.ConfigError` for a file that cannot be read."""
    family_dir = GIN_ROOT / "scales" / scale
    family_files = sorted(family_dir.glob("*.gin")) if family_dir.is_dir() else []
    return _sha([FORMAT, __version__, code_fingerprint(), scale, list(names), expand(files),
                 [str(p) for p in family_files], expand(family_files) if family_files else "",
                 list(bindings)])


def cell_prekey(combination: str, seed: int) -> str:
    """Pre-key of one cell: its combination's pre-key and its seed."""
    return _sha([combination, int(seed)])


def entry_of(cell: Any, parent_prekey: str = "", init_from: str = "") -> dict[str, Any]:
    """The index entry of a built `bench.runner.cell.Cell` (`parent_prekey`, `init_from`: see FIELDS)."""
    fields = {name: getattr(cell, name) for name in FIELDS if hasattr(cell, name)}
    return {**fields, "parent_prekey": parent_prekey, "init_from": init_from}


def _problem(data: object) -> str:
    """Why `data` (a parsed index) cannot be trusted; '' when it can."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"not a {FORMAT!r} file"
    entries = data.get("entries")
    if not isinstance(entries, dict) or data.get("checksum") != _sha(entries):
        return "its entries do not match its checksum (edited or damaged)"
    for prekey, entry in entries.items():
        if not isinstance(entry, dict) or set(entry) != set(FIELDS) or not all(
                type(entry[name]) is kind for name, kind in FIELDS.items()):
            return f"entry {prekey[:12]}... lacks a field or has one of the wrong type"
    return ""


def read_index(results: Path, quiet: bool = False) -> dict[str, dict[str, Any]]:
    """pre-key -> entry from `results`'s index ({} when there is none). A damaged index is named on
    stderr (unless `quiet`) and read as empty (every cell is then built: the slow path)."""
    path = Path(results) / INDEX
    try:
        data = json.loads(path.read_text())
        problem = _problem(data)
    except (FileNotFoundError, NotADirectoryError):  # no index (or no folder: named elsewhere)
        return {}
    except (OSError, ValueError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        problem = f"unreadable ({type(err).__name__})"
    if problem and not quiet:
        print(f"ignoring the pre-key index {path}: {problem}; every cell is built to find its key",
              file=sys.stderr)
    return {} if problem else data["entries"]


def record(results: Path, entries: Mapping[str, dict[str, Any]]) -> None:
    """Add `entries` to `results`'s index (atomically), keeping the old entries whose run folder
    is still there. Call it only while holding the results folder's lock."""
    runs = runs_dir(Path(results))
    old = read_index(results, quiet=True)  # named already when it was looked up
    kept = {k: e for k, e in old.items() if (runs / e["run_id"]).is_dir()}
    merged = {**kept, **entries}
    if merged == old:
        return
    atomic_write_text(Path(results) / INDEX, json.dumps(
        {"format": FORMAT, "checksum": _sha(merged), "entries": merged}, indent=1) + "\n")
