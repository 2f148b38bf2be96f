"""What can be run: the gin files under `gin/` per axis, each with the first sentence of its
leading comment.

`python -m bench catalog` prints tasks, models, objectives, scales and matrices; any of them can be
named on the command line (`run <matrix>`, `--tasks`, `--models`, `--objectives`, `--scale`).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.runner import config

AXES = ("tasks", "models", "objectives", "scales", "matrices")


def first_comment(path: Path, limit: int = 110) -> str:
    """The first sentence of the file's leading `#` comment block ('' when none), at most `limit`
    characters (cut at a word, with `…`)."""
    block = []
    for line in config.read_gin(path).splitlines():  # ConfigError (file, line) if not UTF-8
        text = line.strip()
        if not text.startswith("#"):
            if block or text:
                break
            continue
        block.append(text.lstrip("#").strip())
    joined = " ".join(block)
    sentence = re.split(r"(?<=[.!?])(?<!al\.)(?<!\.g\.)\s+(?=[A-Z])", joined, maxsplit=1)[0]
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0] + " …"
    return sentence


def catalog(root: Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """axis -> [(name, first comment line)] for the top-level gin files of each axis folder of
    `root` (default `bench.runner.config.GIN_ROOT`; `scales/cpu/<family>.gin` and
    `matrices/cpu/<family>.gin` are parts, not listed)."""
    root = root or config.GIN_ROOT
    return {axis: [(p.stem, first_comment(p)) for p in sorted((root / axis).glob("*.gin"))]
            for axis in AXES}


def format_catalog(entries: dict[str, list[tuple[str, str]]]) -> str:
    lines = []
    for axis, items in entries.items():
        lines.append(f"{axis}:")
        width = max((len(name) for name, _ in items), default=0)
        lines += [f"  {name:{width}s}  {comment}".rstrip() for name, comment in items]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
