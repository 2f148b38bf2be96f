"""Train / validation / test splits shared by every task family.

Every task answers `dataset(split)` for `split` in `SPLITS`. Where the data source has an
official validation split the task reads it; where it has none (all the generated data and the
real datasets loaded so far), the validation split is carved out of the source's training data:

* a fixed share `fraction` (default 0.1, at least one example) of the source's training rows,
  chosen by a permutation drawn from `numpy.random.default_rng([SPLIT_SALT, data_seed])`, so it
  depends on the task's data seed only, never on the training seed (paired comparisons);
* `train` is the rest of the rows, in their original order; the two are disjoint and together
  are exactly the source's training rows;
* `test` is the source's test split, untouched.

`fraction` is a gin binding (`bench.tasks.splits.carve.fraction = 0.2`); it is part of the config
text and therefore of every cell's identity. Gin is read where an `Experiment` is built (the
driver, `bench.runner.run.run_cell`): `Experiment` asks `val_fraction()` for the bound value and hands it
to its task (`Task.val_fraction`); data loading itself (`carve`, `select`) reads no gin. `fraction = 0` carves nothing: `train` is the whole
training source in its order (a published protocol that trains on all of it, e.g. MNIST-1D's
4000 examples) and asking for `val` is a `ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import gin
import numpy as np

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_SALT = 20240611  # separates the split permutation from every other use of data_seed


def check_split(split: str) -> None:
    """Raise `ValueError` unless `split` is one of `SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


DEFAULT_FRACTION = 0.1


def check_fraction(fraction: float) -> float:
    """`fraction`, or `ValueError` unless it is 0 (no carve) or in (0, 1)."""
    if not (fraction == 0.0 or 0.0 < fraction < 1.0):
        raise ValueError(f"bench.tasks.splits.carve.fraction must be 0 or in (0, 1), "
                         f"got {fraction!r}")
    return fraction


@gin.configurable("carve", module="bench.tasks.splits")
def val_fraction(fraction: float = DEFAULT_FRACTION) -> float:
    """The bound `bench.tasks.splits.carve.fraction` (the gin name `carve` keeps every config and
    cache key as it was), checked; called only while gin is parsed (by `Experiment`)."""
    return check_fraction(fraction)


def carve(n: int, data_seed: int, fraction: float = DEFAULT_FRACTION) -> dict[str, np.ndarray]:
    """Row indices `{'train': [n - v], 'val': [v]}` (sorted) of a training source of `n` rows,
    `v = max(1, round(fraction * n))`; needs `n >= 2` and `0 < fraction < 1`. `fraction = 0`:
    `train` is every row and `val` is empty (no carve)."""
    check_fraction(fraction)
    if fraction == 0.0:
        return {"val": np.arange(0), "train": np.arange(n)}
    if n < 2:
        raise ValueError(f"cannot carve a validation split out of {n} training example(s)")
    n_val = min(n - 1, max(1, round(fraction * n)))
    order = np.random.default_rng([SPLIT_SALT, int(data_seed)]).permutation(n)
    return {"val": np.sort(order[:n_val]), "train": np.sort(order[n_val:])}


def select(split: str, source: Callable[[str], Any], data_seed: int,
           official_val: bool = False, fraction: float = DEFAULT_FRACTION):
    """The `datasets.Dataset` of `split` from `source(name)`, which loads the source's own splits.

    `official_val`: the source has its own 'val' split (read as is); otherwise 'train' and 'val'
    are carved from `source('train')` by `carve` (a share `fraction` for 'val').
    """
    check_split(split)
    if split == "test" or official_val:
        return source(split)
    full = source("train")
    rows = carve(len(full), data_seed, fraction)
    if split == "val" and not len(rows["val"]):
        raise ValueError("no validation split: bench.tasks.splits.carve.fraction = 0 trains on "
                         "the whole training source; bind a fraction in (0, 1) to evaluate 'val'")
    return full if len(rows["train"]) == len(full) else full.select(rows[split].tolist())
