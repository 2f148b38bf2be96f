"""A run's config identity: which runs one table row may pool.

`config_id(text, parent_id)` is the sha256 of the canonical config text (`canonical`: comments,
blank lines and trailing spaces dropped), the package version and, for a fine-tuning cell, its
parent's config id: the config text the cache keys (`bench.runner.identity`) hash, without the seed. The
runs of one config on different seeds share it; a changed binding, training or evaluation, gives
another. A fine-tuning child's identity uses its parent's identity (not the parent's seeded key),
so `*_ft` runs of one config pool across seeds too.

Every new run records its `config_id` in run.json (and the runs table). A run recorded before that
gets it derived from its `config.gin` the same way (`derived_config_id`); a row of a saved table
without its run folder has none ('') and is pooled as before, since nothing says what it ran.

`mixed_configs(runs)` finds the (task, model, objective) whose live runs come from more than one
config; the report refuses such a folder with one line naming the differing bindings
(`describe_mix`), since averaging them would be silently wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from bench import __version__

ROW = ["task", "model", "objective"]
#: statuses whose runs a report pools (superseded, damaged and skipped runs contribute nothing)
POOLED = ("done", "failed", "diverged")


def canonical(config_text: str) -> str:
    """`config_text` without full-line comments, blank lines and trailing spaces: what a cell's
    identity depends on (editing a comment in a gin file re-runs nothing)."""
    lines = (line.rstrip() for line in config_text.splitlines())
    return "\n".join(line for line in lines if line and not line.lstrip().startswith("#")) + "\n"


def config_id(config_text: str, parent_id: str = "", version: str = __version__) -> str:
    """sha256 of the canonical config text, the package version and the parent's config id (a
    fine-tuning cell's `# --- init_from` line is a comment: it does not count)."""
    blob = f"{canonical(config_text)}\n# dlc-bench={version}\n"
    if parent_id:
        blob += f"# init_from config={parent_id}\n"
    return hashlib.sha256(blob.encode()).hexdigest()


def derived_config_id(folder: Path, record: dict, _depth: int = 0) -> str:
    """The config id of a run recorded before run.json held one, from its `config.gin` (and its
    parent's, for a fine-tuning run); '' when the config text is not there."""
    try:
        text = (Path(folder) / "config.gin").read_text()
    except (OSError, ValueError):
        return ""
    parent_id = ""
    parent = record.get("parent") or ""
    if parent and _depth < 2:
        parent_folder = Path(folder).parent / str(parent)
        try:
            parent_record = json.loads((parent_folder / "run.json").read_text())
        except (OSError, ValueError):
            parent_record = {}
        parent_id = (parent_record.get("config_id") if isinstance(parent_record, dict) else "") \
            or derived_config_id(parent_folder, parent_record or {}, _depth + 1)
    return config_id(text, parent_id, str(record.get("package_version") or ""))


def mixed_configs(runs: pd.DataFrame) -> dict[tuple[str, str, str], pd.DataFrame]:
    """(task, model, objective) -> its live runs, for every row whose live runs have more than one
    known config id (runs without one are not compared)."""
    if runs.empty or "config_id" not in runs:
        return {}
    live = runs[runs["status"].isin(POOLED) & runs["config_id"].fillna("").astype(bool)]
    return {key: group for key, group in live.groupby(ROW)
            if group["config_id"].nunique() > 1}


def _bindings(results: Path, run_id: str) -> set[str] | None:
    try:
        return set(canonical((Path(results) / "runs" / run_id / "config.gin").read_text())
                   .splitlines())
    except (OSError, ValueError):
        return None


def describe_mix(results: Path, mixed: dict[tuple[str, str, str], pd.DataFrame]) -> str:
    """One line: the first mixed row, the seeds of each config and the lines their configs differ
    in (read from the run folders' config.gin; run ids when those are not here)."""
    (task, model, objective), group = next(iter(mixed.items()))
    configs = list(group.groupby("config_id", sort=False))
    sides = []
    for cid, runs in configs[:2]:
        seeds = ", ".join(str(s) for s in sorted(runs["seed"].dropna().astype(int)))
        sides.append((f"seed {seeds} (config {cid[:8]}, run {runs['run_id'].iloc[0]})",
                      _bindings(results, runs["run_id"].iloc[0])))
    differ = ""
    if sides[0][1] is not None and sides[1][1] is not None:
        only = [sorted(a - b) for a, b in ((sides[0][1], sides[1][1]), (sides[1][1], sides[0][1]))]
        differ = "; lines only in the first: " + " / ".join(
            "; ".join(f"`{line}`" for line in lines[:3]) or "none" for lines in only[:1]) + \
            ", only in the second: " + ("; ".join(f"`{line}`" for line in only[1][:3]) or "none")
    more = f" (and {len(mixed) - 1} more row(s))" if len(mixed) > 1 else ""
    return (f"{results}: {task}/{model}/{objective} has live runs of {len(configs)} configs, which "
            f"one table row must not average: {sides[0][0]} vs {sides[1][0]}{differ}{more}; re-run "
            "the other seeds with one config (`python -m bench run` with the same bindings) or "
            "move the unwanted run folders out of the results folder")
