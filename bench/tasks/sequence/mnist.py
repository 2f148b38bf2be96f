"""MNIST from local files (IDX format), or from the Hugging Face Hub when the user asks.

Nothing is downloaded by default: `load_mnist(root, split)` reads the four files LeCun
distributes (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte`, each optionally gzipped) from `root`, or from torchvision's layout
`root/MNIST/raw` (or `root/raw`). Missing files raise `MissingDataError`, which names the files and
every folder searched. `load_hf_mnist(split)` calls `datasets.load_dataset("ylecun/mnist")`
(online, or from the user's Hugging Face cache).

Images come back as uint8 `[N, 784]` (row-major 28x28) and labels as int64 `[N]`; the task
normalises with (0.1307, 0.3081) and applies the permutation (Le et al. 2015 protocol).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics (pixels in [0, 1])

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"); data are big-endian
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class MissingDataError(FileNotFoundError):
    """Local data files are missing; the message names them and where they were looked for."""


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzipped if its name ends in `.gz`) into an array of its declared shape.

    Header: two zero bytes, a type code, the number of dimensions d, then d big-endian uint32
    sizes; the data follow in C order.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # truncated or not gzip at all
        raise ValueError(f"{path}: not a readable gzip file ({type(err).__name__}: {err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} ({expected} bytes), "
                         f"file has {len(raw)} bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def search_folders(root: str | Path) -> list[Path]:
    """Folders searched for the IDX files, in order: root, root/MNIST/raw, root/raw."""
    root = Path(root).expanduser().resolve()
    return [root, root / "MNIST" / "raw", root / "raw"]


def find_file(root: str | Path, name: str) -> Path | None:
    """`name` or `name.gz` in the first search folder that has it (None if none has)."""
    for folder in search_folders(root):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def missing_mnist(root: str | Path) -> str:
    """'' when the IDX files of both splits are under `root`, else one line naming them."""
    missing = [name for split in ("train", "test") for name in FILES[split]
               if find_file(root, name) is None]
    if not missing:
        return ""
    return (f"MNIST files not found: {', '.join(missing)} (or .gz) in "
            f"{', '.join(str(f) for f in search_folders(root))}")


def load_mnist(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 `[N, 784]` and labels int64 `[N]` of `split` ('train' or 'test') from IDX
    files under `root`. Raises `MissingDataError` naming the missing files and the folders."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = FILES[split]
    found = {name: find_file(root, name) for name in names}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        folders = ", ".join(str(f) for f in search_folders(root))
        raise MissingDataError(
            f"MNIST {split} files not found: {', '.join(missing)} (or the same with .gz). "
            f"Looked in: {folders}. Nothing is downloaded: put LeCun's IDX files (or "
            "torchvision's MNIST/raw folder) there, point the task at them with "
            "--gin_bindings \"bench.tasks.sequence.task.MNIST.root = '/path/to/mnist'\", or set "
            "bench.tasks.sequence.task.MNIST.source = 'hf' to use datasets.load_dataset("
            "'ylecun/mnist') when online.")
    images = read_idx(found[names[0]])
    labels = read_idx(found[names[1]])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"MNIST {split}: images {images.shape} and labels {labels.shape} do not "
                         "form [N, rows, cols] / [N]")
    return images.reshape(len(images), -1).astype(np.uint8), labels.astype(np.int64)


def load_hf_mnist(split: str, name: str = "ylecun/mnist") -> tuple[np.ndarray, np.ndarray]:
    """As `load_mnist`, from `datasets.load_dataset(name, split=split)` (needs the network or the
    user's Hugging Face cache; honours `HF_DATASETS_OFFLINE`)."""
    import datasets

    data = datasets.load_dataset(name, split=split)
    images = np.stack([np.asarray(img, dtype=np.uint8).reshape(-1) for img in data["image"]])
    return images, np.asarray(data["label"], dtype=np.int64)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write `array` (uint8) as an IDX file, as LeCun's files are laid out (gzipped if asked)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


def write_stand_in(root: str | Path, n: int = 20, seed: int = 0) -> None:
    """Small generated IDX files of both splits under `root` (offline checks): `n` random 28 x 28
    images with labels 0..9 each."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for images, labels in FILES.values():
        write_idx(folder / images, rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        write_idx(folder / labels, np.arange(n, dtype=np.uint8) % 10)
