"""Datasets as Hugging Face `datasets.Dataset`: generated ones cached on disk, keyed by their
parameters (`cached_dataset`), and in-memory ones over numpy columns (`in_memory_dataset`).

Two workers may ask for the same data at once: generation happens under a file lock, the dataset is
written to a temporary folder and renamed into place, so a reader never sees a half-written cache;
a failed write (a full disk) removes its temporary folder, and a cache folder that cannot be read
is named (`DamagedCache`). The cache lives in `$DLC_BENCH_CACHE` (default `~/.cache/dlc-bench/data`). Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock


class DamagedCache(RuntimeError):
    """A cached dataset folder that cannot be read (names the folder)."""


def cache_root() -> Path:
    """Folder holding generated datasets (`$DLC_BENCH_CACHE`, default `~/.cache/dlc-bench/data`)."""
    env = os.environ.get("DLC_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dlc-bench" / "data"


def params_key(params: Mapping[str, object]) -> str:
    """Stable short hash of JSON-able generator parameters."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_dataset(
    name: str,
    params: Mapping[str, object],
    build: Callable[[], Mapping[str, np.ndarray]],
):
    """Load `name` generated with `params`, building it with `build()` on a cache miss.

    Args:
        name: family/generator name, used in the folder name.
        params: everything that determines the data (sizes, seed, split, version of the recipe).
        build: returns columns as numpy arrays with a common first dimension N.

    Returns:
        `datasets.Dataset` in torch format (each column a tensor of shape [N, ...]).
    """
    import datasets

    datasets.disable_progress_bars()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{name}-{params_key(params)}"
    with FileLock(str(folder) + ".lock"):
        if not (folder / "dataset_info.json").exists():
            columns = {k: np.asarray(v) for k, v in build().items()}
            features = datasets.Features({k: _feature(v) for k, v in columns.items()})
            data = datasets.Dataset.from_dict(
                {k: list(v) if v.ndim > 1 else v for k, v in columns.items()}, features=features
            )
            tmp = root / f".{folder.name}.{uuid.uuid4().hex}"
            try:
                data.save_to_disk(str(tmp))
                (tmp / "params.json").write_text(json.dumps(dict(params), sort_keys=True,
                                                            default=str))
                if folder.exists():  # a stale, incomplete folder from a killed writer
                    shutil.rmtree(folder)
                os.replace(tmp, folder)
            except BaseException:  # a full disk, an interrupt: no half-written folder stays
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        try:
            return datasets.load_from_disk(str(folder)).with_format("torch")
        except Exception as err:  # noqa: BLE001 - a truncated or altered cache file
            raise DamagedCache(f"{folder}: damaged data cache ({type(err).__name__}: {err}); "
                               "remove the folder and it is generated again") from err


def _feature(array: np.ndarray):
    import datasets

    dtype = {"f": "float32", "i": "int64", "u": "int64", "b": "bool"}[array.dtype.kind]
    if array.ndim == 1:
        return datasets.Value(dtype)
    if array.ndim == 2:
        return datasets.Sequence(datasets.Value(dtype), length=array.shape[1])
    shape = array.shape[1:]
    array_type = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D}[len(shape)]
    return array_type(shape=shape, dtype=dtype)


def in_memory_dataset(columns: Mapping[str, np.ndarray], dtype: torch.dtype | None = None):
    """`datasets.Dataset` (torch format) over numpy columns `[N]` / `[N, D]` without copying them
    through Python lists (2-D columns become fixed-size lists). The torch formatter makes integer
    columns int64 unless `dtype` is given (it then applies to every column)."""
    import datasets
    import pyarrow as pa

    arrays = {}
    for key, value in columns.items():
        value = np.ascontiguousarray(value)
        if value.ndim == 1:
            arrays[key] = pa.array(value)
        elif value.ndim == 2:
            arrays[key] = pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)),
                                                            value.shape[1])
        else:
            raise ValueError(f"column {key!r}: expected 1-D or 2-D, got shape {value.shape}")
    kwargs = {} if dtype is None else {"dtype": dtype}
    return datasets.Dataset(pa.table(arrays)).with_format("torch", **kwargs)
