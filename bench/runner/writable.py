"""Can results be written? File-system checks before any cell runs, and one line per file-system
error after.

* `check_results_folder(results)`: before any cell runs (also under `--dry-run`): the folder, or
  the nearest folder above it that exists, is a folder on a writable file system that we may write
  into, and `RESULTS/runs` is not a file. Raises `StorageError`.
* `check_run_ids(cells, results)`: every run id fits in one file name of that file system
  (`NAME_MAX`, 255 bytes on Linux file systems), with room for the staging suffix.
* `storage_error(err)`: the one-line description of an `OSError` that is about the storage (disk
  full, quota, read-only file system, no permission, name too long, a file where a folder belongs),
  or '' for any other error. A worker returns it in its outcome (`storage`), and the driver stops
  the matrix with it (`raise_for_storage`): the cells finished before are kept.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: errors that say the storage cannot take what we write (not a bug in the suite)
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                            errno.ENAMETOOLONG, errno.ENOTDIR, errno.EFBIG})
#: bytes a run id leaves free in a file name: the staging (`.<id>.staging-xxxxxxxx`) and replaced
#: (`.<id>.old-xxxxxxxx`) folders add at most this much to it
NAME_ROOM = 32


class StorageError(RuntimeError):
    """Results cannot be written where they were asked for (one line, exit code 2)."""


def storage_error(err: BaseException) -> str:
    """'PATH: No space left on device (ENOSPC)' for a storage `OSError`, else ''."""
    if not isinstance(err, OSError) or err.errno not in STORAGE_ERRNOS:
        return ""
    name = errno.errorcode.get(err.errno, str(err.errno))
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or os.strerror(err.errno)} ({name})"


def _existing(path: Path) -> Path:
    """`path` or the nearest folder above it that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_results_folder(results: Path) -> None:
    """Raise `StorageError` when nothing could be written under `results` (see the docstring)."""
    results = Path(results)
    for folder in (results, results / "runs"):
        if folder.exists() and not folder.is_dir():
            raise StorageError(f"{folder} exists and is not a folder")
    base = _existing(results)
    if not base.is_dir():
        raise StorageError(f"{base} is not a folder, so {results} cannot be made")
    if os.statvfs(base).f_flag & os.ST_RDONLY:
        raise StorageError(f"{base} is on a read-only file system ({errno.errorcode[errno.EROFS]}); "
                           "choose another results folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise StorageError(f"no permission to write in {base}; choose another results folder")


def name_max(results: Path) -> int:
    """The longest file name (bytes) the file system of `results` takes."""
    try:
        return os.pathconf(_existing(results), "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_run_ids(run_ids: Iterable[str], results: Path) -> None:
    """Raise `StorageError` for the first run id too long to be a folder name under `results`."""
    limit = name_max(results) - NAME_ROOM
    for run_id in run_ids:
        size = len(os.fsencode(run_id))
        if size > limit:
            raise StorageError(
                f"run id {run_id[:40]}... is {size} bytes, but a folder name on this file system "
                f"may have {limit + NAME_ROOM} ({limit} for the run id); shorten the names of the "
                "task, model or objective files")


def raise_for_storage(outcome: Mapping[str, Any], finished: int) -> None:
    """Stop the driver when a worker could not write its run folder (`outcome['storage']`)."""
    if outcome.get("storage"):
        raise StorageError(f"cannot write results: {outcome['storage']} (cell {outcome['run_id']});"
                           f" the {finished} cell(s) finished before are kept; free the space or "
                           "choose another folder, then run the same command again")
