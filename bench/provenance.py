"""Where a number was measured: CPU model, git commit, versions."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path


def cpu_name() -> str:
    """CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_sha() -> str | None:
    """HEAD of the checkout this package runs from, or None outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, str | None]:
    """Versions and machine a run executes on (recorded in its run.json)."""
    import torch

    from bench import __version__

    return {"package_version": __version__, "git_sha": git_sha(), "python": sys.version.split()[0],
            "torch": torch.__version__, "platform": platform.platform(), "cpu": cpu_name()}
