"""Offline sequence data: synthetic long-memory problems and small bundled digit sets.

Every generator is deterministic in its arguments and returns numpy columns with a common first
dimension N (what `bench.tasks.dataset_cache.cached_dataset` stores):

* `adding`: the adding problem (Hochreiter & Schmidhuber 1997, as in Arjovsky et al. 2016):
  `x [N, T, 2]` float32 (value U[0, 1], marker 0/1), `y [N, 1]` = sum of the two marked values.
* `copy_memory`: the copy-memory problem (same sources): `x [N, T + 2K]` int64 tokens,
  `y [N, T + 2K]` int64 classes (0 blank, 1..A symbols).
* `digits`: scikit-learn's bundled 8x8 digits as pixel / row / permuted sequences (the offline
  analogue of the sequential MNIST of Le et al. 2015): `x [N, L, F]` float32, `y [N]` int64.
* `mnist1d`: MNIST-1D (Greydanus 2020) built procedurally by `mnist1d.data.make_dataset`
  (never its download path): `x [N, 40, 1]` float32, `y [N]` int64.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Columns = dict[str, np.ndarray]

BLANK = 0  # copy memory: the blank token and class


def adding(n: int, length: int, seed: int,
           markers: Literal["halves", "uniform"] = "halves") -> Columns:
    """The adding problem with sequences of `length` steps.

    markers: 'halves' puts one marker in each half of the sequence (Hochreiter & Schmidhuber
        1997; Arjovsky et al. 2016); 'uniform' draws the two marked steps uniformly without
        replacement (the TCN repository's convention).

    Returns `x [n, length, 2]` (channel 0 the value, channel 1 the marker) and `y [n, 1]`.
    Predicting the mean 1 gives MSE Var(U1 + U2) = 1/6, the trivial baseline.
    """
    if length < 2:
        raise ValueError(f"adding needs length >= 2, got {length}")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length))
    if markers == "halves":
        half = length // 2
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, length, size=n)
    elif markers == "uniform":
        picks = np.argsort(rng.random((n, length)), axis=1)[:, :2]  # two distinct steps
        first, second = picks[:, 0], picks[:, 1]
    else:
        raise ValueError(f"markers must be 'halves' or 'uniform', got {markers!r}")
    mark = np.zeros((n, length))
    rows = np.arange(n)
    mark[rows, first] = 1.0
    mark[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return {"x": np.stack([values, mark], axis=-1).astype(np.float32),
            "y": target[:, None].astype(np.float32)}


def copy_memory(n: int, delay: int, seed: int, symbols: int = 10, alphabet: int = 8) -> Columns:
    """The copy-memory problem with `delay` T (sequences of T + 2 * symbols steps).

    Input tokens: `symbols` symbols drawn uniformly from 1..alphabet, T - 1 blanks (0), the
    delimiter (alphabet + 1), then `symbols` blanks. Target classes: blank everywhere except the
    last `symbols` steps, which repeat the symbols. Input vocabulary alphabet + 2, output classes
    alphabet + 1. The memoryless baseline (blank, then uniform over the alphabet on the last
    steps) has per-step CE symbols * ln(alphabet) / (T + 2 * symbols).

    Returns `x [n, T + 2 symbols]` and `y [n, T + 2 symbols]`, both int64.
    """
    if delay < 1:
        raise ValueError(f"copy_memory needs delay >= 1, got {delay}")
    rng = np.random.default_rng(seed)
    length = delay + 2 * symbols
    data = rng.integers(1, alphabet + 1, size=(n, symbols))
    x = np.full((n, length), BLANK, dtype=np.int64)
    x[:, :symbols] = data
    x[:, symbols + delay - 1] = alphabet + 1  # the delimiter: "start recalling after me"
    y = np.full((n, length), BLANK, dtype=np.int64)
    y[:, -symbols:] = data
    return {"x": x, "y": y}


def _digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images [1797, 64] in [0, 1] and labels [1797]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.astype(np.float64) / 16.0, bunch.target.astype(np.int64)


def digits(split: Literal["train", "test"], mode: Literal["pixel", "row", "permuted"] = "pixel",
           perm_seed: int = 12008, split_seed: int = 0, n_test: int = 360) -> Columns:
    """Sequences of scikit-learn's 8x8 digits (1797 images, 10 classes), offline.

    The split is stratified by class (`n_test` test images, `split_seed`), pixels are standardised
    with the training split's mean and std. mode: 'pixel' reads 64 steps of 1 pixel (row-major),
    'row' 8 steps of 8 pixels, 'permuted' 64 steps in the fixed order
    `np.random.RandomState(perm_seed).permutation(64)` (recorded in the cache key).

    Returns `x [N, 64, 1]` or `[N, 8, 8]` (float32) and `y [N]` (int64).
    """
    from sklearn.model_selection import train_test_split

    images, labels = _digit_images()
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(index, test_size=n_test, stratify=labels,
                                           random_state=split_seed)
    mean, std = images[train_idx].mean(), images[train_idx].std()
    pick = train_idx if split == "train" else test_idx
    x = (images[pick] - mean) / std
    if mode == "pixel":
        x = x[:, :, None]
    elif mode == "row":
        x = x.reshape(-1, 8, 8)
    elif mode == "permuted":
        x = x[:, np.random.RandomState(perm_seed).permutation(64)][:, :, None]  # noqa: NPY002
    else:
        raise ValueError(f"mode must be 'pixel', 'row' or 'permuted', got {mode!r}")
    return {"x": x.astype(np.float32), "y": labels[pick]}


def mnist1d(split: Literal["train", "test"], n: int = 5000, seed: int = 42,
            shuffle_seq: bool = False) -> Columns:
    """MNIST-1D (Greydanus 2020), generated by `mnist1d.data.make_dataset` with `n` samples
    (80 % train / 20 % test, the package's split) and `seed` (42 = the published dataset).

    `make_dataset` seeds numpy's and python's global generators; both are restored afterwards.
    Returns `x [N, 40, 1]` float32 (zero mean, unit std over the whole set) and `y [N]` int64.
    """
    import random

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.shuffle_seq = n, seed, shuffle_seq
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x, y = (data["x"], data["y"]) if split == "train" else (data["x_test"], data["y_test"])
    return {"x": np.asarray(x, dtype=np.float32)[:, :, None], "y": np.asarray(y, dtype=np.int64)}
