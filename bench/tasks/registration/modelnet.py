"""Reader of the ModelNet40 HDF5 release (Wu et al. 2015; PointNet's `modelnet40_ply_hdf5_2048`)
from a local folder. Nothing is downloaded: the canonical Stanford URL is dead; place the files
in a folder and bind its path (`Registration.root`).

Expected in `root`: `ply_data_train*.h5`, `ply_data_test*.h5` (keys `data` [S, 2048, 3],
`label` [S, 1], optionally `normal` [S, 2048, 3]) and `shape_names.txt` (40 names).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EXPECTED = ("ply_data_train*.h5", "ply_data_test*.h5", "shape_names.txt")


def missing_modelnet40(root: str | Path) -> str:
    """'' when `root` holds the ModelNet40 HDF5 files, else one line naming what is missing."""
    folder = Path(root).expanduser()
    missing = [pattern for pattern in EXPECTED if not sorted(folder.glob(pattern))]
    if folder.is_dir() and not missing:
        return ""
    return (f"ModelNet40 HDF5 files not found in {str(folder)!r}: missing "
            f"{', '.join(missing if folder.is_dir() else EXPECTED)} (expected "
            f"{', '.join(EXPECTED)} from modelnet40_ply_hdf5_2048; nothing is downloaded, bind "
            "bench.tasks.registration.Registration.root to the folder holding them)")


def load_modelnet40(root: str | Path, partition: str) -> dict[str, np.ndarray]:
    """All shapes of `partition` ('train' or 'test') in `root`.

    Returns `data` [S, P, 3], `normal` [S, P, 3] (zeros if the files have none), float32, and
    `label` [S] int64. Raises `FileNotFoundError` naming the folder and the missing files.
    """
    if partition not in ("train", "test"):
        raise ValueError(f"partition must be 'train' or 'test', got {partition!r}")
    folder = Path(root).expanduser()
    problem = missing_modelnet40(folder)
    if problem:
        raise FileNotFoundError(problem)
    import h5py

    data, normal, label = [], [], []
    for path in sorted(folder.glob(f"ply_data_{partition}*.h5")):
        try:
            with h5py.File(path, "r") as f:
                points = np.asarray(f["data"], dtype=np.float32)
                data.append(points)
                normal.append(np.asarray(f["normal"], dtype=np.float32) if "normal" in f
                              else np.zeros_like(points))
                label.append(np.asarray(f["label"], dtype=np.int64).reshape(-1))
        except (OSError, KeyError) as err:  # not HDF5, truncated, or without data/label
            raise ValueError(f"{path}: not a readable ModelNet40 HDF5 file "
                             f"({type(err).__name__}: {err})") from err
    return {"data": np.concatenate(data), "normal": np.concatenate(normal),
            "label": np.concatenate(label)}


def shape_names(root: str | Path) -> list[str]:
    """The category names in `root/shape_names.txt`, in label order."""
    return [line.strip() for line in (Path(root) / "shape_names.txt").read_text().splitlines()
            if line.strip()]


def write_stand_in(root: str | Path, points: int, shapes: tuple[int, int] = (8, 4),
                   seed: int = 0) -> None:
    """Small generated files in the ModelNet40 layout under `root` (offline checks): `shapes`
    random clouds of `points` points in the unit ball for train and test, train labels in
    0..19 and test labels in 20..39 (both 'seen' and 'unseen' splits have data)."""
    import h5py

    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for (part, first), count in zip((("train", 0), ("test", 20)), shapes):
        cloud = rng.normal(size=(count, points, 3))
        cloud *= rng.uniform(0, 1, (count, points, 1)) ** (1 / 3) / np.linalg.norm(
            cloud, axis=-1, keepdims=True)
        with h5py.File(folder / f"ply_data_{part}0.h5", "w") as f:
            f["data"] = cloud.astype(np.float32)
            f["label"] = (first + np.arange(count) % 20).astype(np.uint8)[:, None]
    (folder / "shape_names.txt").write_text("\n".join(f"shape{i}" for i in range(40)) + "\n")
