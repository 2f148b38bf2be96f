"""Family `sequence`, data: the offline generators, the IDX parser and the MNIST loader."""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.tasks.sequence import generators, mnist
from bench.tasks.sequence.classification import MNIST


# --- adding ------------------------------------------------------------------------------------
@pytest.mark.parametrize("markers", ["halves", "uniform"])
def test_adding_shapes_determinism_and_target(markers: str) -> None:
    a = generators.adding(64, 30, seed=5, markers=markers)
    b = generators.adding(64, 30, seed=5, markers=markers)
    c = generators.adding(64, 30, seed=6, markers=markers)
    assert a["x"].shape == (64, 30, 2) and a["y"].shape == (64, 1)
    assert a["x"].dtype == np.float32 and a["y"].dtype == np.float32
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["x"], c["x"])
    values, marks = a["x"][..., 0], a["x"][..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert set(np.unique(marks)) == {0.0, 1.0} and (marks.sum(1) == 2).all()
    np.testing.assert_allclose(a["y"][:, 0], (values * marks).sum(1), rtol=1e-6)
    if markers == "halves":
        assert (marks[:, :15].sum(1) == 1).all() and (marks[:, 15:].sum(1) == 1).all()


def test_adding_uniform_markers_reach_both_halves_together() -> None:
    marks = generators.adding(2000, 20, seed=0, markers="uniform")["x"][..., 1]
    assert (marks[:, :10].sum(1) == 2).any() and (marks[:, 10:].sum(1) == 2).any()


def test_adding_trivial_baseline_is_one_sixth() -> None:
    y = generators.adding(40000, 10, seed=1)["y"][:, 0]
    assert abs(((y - 1.0) ** 2).mean() - 1 / 6) < 0.005


# --- copy memory ---------------------------------------------------------------------------------
def test_copy_memory_layout_and_targets() -> None:
    delay, symbols, alphabet = 7, 10, 8
    data = generators.copy_memory(32, delay, seed=3, symbols=symbols, alphabet=alphabet)
    x, y = data["x"], data["y"]
    length = delay + 2 * symbols
    assert x.shape == y.shape == (32, length) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(x, generators.copy_memory(32, delay, 3, symbols, alphabet)["x"])
    assert not np.array_equal(x, generators.copy_memory(32, delay, 4, symbols, alphabet)["x"])
    head = x[:, :symbols]
    assert ((head >= 1) & (head <= alphabet)).all()
    delimiter = alphabet + 1
    assert (x == delimiter).sum(1).tolist() == [1] * 32
    assert (np.argmax(x == delimiter, axis=1) == length - symbols - 1).all()
    assert (x[:, symbols:][x[:, symbols:] != delimiter] == 0).all()
    np.testing.assert_array_equal(y[:, -symbols:], head)  # recall the symbols at the end
    assert (y[:, :-symbols] == 0).all()


# --- digits ---------------------------------------------------------------------------------------
def test_digits_modes_split_and_permutation() -> None:
    train = generators.digits("train", "pixel")
    test = generators.digits("test", "pixel")
    assert train["x"].shape == (1437, 64, 1) and test["x"].shape == (360, 64, 1)
    # stratified: every class has (almost) the same share in both splits
    share = np.bincount(test["y"], minlength=10) / 360
    assert np.abs(share - np.bincount(train["y"], minlength=10) / 1437).max() < 0.01
    assert abs(float(train["x"].mean())) < 1e-4 and abs(float(train["x"].std()) - 1) < 1e-3
    rows = generators.digits("train", "row")
    assert rows["x"].shape == (1437, 8, 8)
    np.testing.assert_array_equal(rows["x"].reshape(1437, 64), train["x"][..., 0])
    perm = generators.digits("train", "permuted", perm_seed=12008)
    order = np.random.RandomState(12008).permutation(64)  # noqa: NPY002 - the recorded order
    np.testing.assert_array_equal(perm["x"][..., 0], train["x"][:, order, 0])
    other = generators.digits("train", "permuted", perm_seed=1)
    assert not np.array_equal(other["x"], perm["x"])
    np.testing.assert_array_equal(perm["y"], train["y"])
    moved = generators.digits("train", "pixel", split_seed=1)
    assert not np.array_equal(moved["y"], train["y"])


# --- MNIST-1D -------------------------------------------------------------------------------------
def test_mnist1d_shapes_determinism_and_global_rng_untouched() -> None:
    np.random.seed(7)  # noqa: NPY002 - checks that the generator restores the global state
    random.seed(7)
    expected_np, expected_py = np.random.rand(), random.random()  # noqa: NPY002
    np.random.seed(7)  # noqa: NPY002
    random.seed(7)
    a = generators.mnist1d("train", n=200, seed=3)
    assert np.random.rand() == expected_np and random.random() == expected_py  # noqa: NPY002
    b = generators.mnist1d("train", n=200, seed=3)
    test = generators.mnist1d("test", n=200, seed=3)
    assert a["x"].shape == (160, 40, 1) and test["x"].shape == (40, 40, 1)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], generators.mnist1d("train", n=200, seed=4)["x"])
    assert set(np.unique(a["y"])) <= set(range(10)) and a["y"].dtype == np.int64


# --- IDX files and the MNIST loader ---------------------------------------------------------------
write_idx = mnist.write_idx  # LeCun's layout (also what `MNIST.stand_in` writes)


def test_read_idx_plain_gzipped_and_broken(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    np.testing.assert_array_equal(mnist.read_idx(write_idx(tmp_path / "a-idx3-ubyte", images)),
                                  images)
    gz = write_idx(tmp_path / "b-idx3-ubyte.gz", images, compress=True)
    np.testing.assert_array_equal(mnist.read_idx(gz), images)
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(mnist.read_idx(write_idx(tmp_path / "l", labels)), labels)
    big = tmp_path / "i32"
    big.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0C, 1, 2) + struct.pack(">2i", -5, 70000))
    assert mnist.read_idx(big).tolist() == [-5, 70000]
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-3])
    with pytest.raises(ValueError, match="IDX header says shape"):
        mnist.read_idx(short)


def _write_mnist(folder: Path, n: int, compress: bool, seed: int = 0) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, (img_name, lab_name) in mnist.FILES.items():
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(folder / f"{img_name}{suffix}", images, compress)
        write_idx(folder / f"{lab_name}{suffix}", labels, compress)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = images, labels
    return arrays


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_load_mnist_from_both_layouts(tmp_path: Path, layout: str) -> None:
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = _write_mnist(folder, 5, compress=layout == "torchvision")
    images, labels = mnist.load_mnist(tmp_path, "test")
    assert images.shape == (5, 784) and images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, arrays["test_x"].reshape(5, 784))
    np.testing.assert_array_equal(labels, arrays["test_y"])


def test_missing_mnist_names_files_and_folders(tmp_path: Path) -> None:
    root = tmp_path / "nowhere"
    with pytest.raises(mnist.MissingDataError) as err:
        mnist.load_mnist(root, "train")
    message = str(err.value)
    for name in mnist.FILES["train"]:
        assert name in message
    for folder in mnist.search_folders(root):
        assert str(folder) in message
    assert isinstance(err.value, FileNotFoundError)
    task = MNIST(root=str(root))  # construction is cheap and does not touch the files
    with pytest.raises(mnist.MissingDataError, match="t10k-images-idx3-ubyte"):
        task.dataset("test")


def test_mnist_task_normalises_and_permutes(tmp_path: Path) -> None:
    arrays = _write_mnist(tmp_path, 6, compress=False)
    plain = MNIST(root=str(tmp_path))
    batch = plain._source("train")[:]  # the official training rows, before the val split
    assert batch["x"].shape == (6, 784) and batch["x"].dtype == torch.uint8
    assert len(plain.dataset("train")) + len(plain.dataset("val")) == 6
    x = plain.inputs(batch)
    assert x.shape == (6, 784, 1)
    raw = torch.from_numpy(arrays["train_x"].reshape(6, 784)).float() / 255
    torch.testing.assert_close(x[..., 0], (raw - 0.1307) / 0.3081)
    permuted = MNIST(root=str(tmp_path), permute=True)
    order = torch.from_numpy(np.random.RandomState(12008).permutation(784))  # noqa: NPY002
    torch.testing.assert_close(permuted.inputs(batch)[..., 0], x[:, order, 0])
    rows = MNIST(root=str(tmp_path), mode="row", n_train=4)
    assert rows.inputs(rows.dataset("train")[:]).shape == (3, 28, 28)  # 4 rows - 1 for val
    assert math.isclose(plain.trivial["accuracy"], 10.0)
