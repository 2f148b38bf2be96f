"""Offline grayscale source images: files bundled inside the scikit-image, scikit-learn and
matplotlib wheels (no pooch / network fetch) plus procedural textures, and matplotlib's bundled DEM.

All images are float32 [H, W] in [0, 1].
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

# skimage.data functions whose files ship in the wheel (checked against skimage/data/ listing)
SKIMAGE_BUNDLED = ("camera", "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                   "retina", "immunohistochemistry", "brick", "grass", "gravel", "moon", "coins",
                   "cell", "clock", "colorwheel")
SKLEARN_BUNDLED = ("china.jpg", "flower.jpg")
MATPLOTLIB_BUNDLED = ("grace_hopper.jpg",)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any uint8/float image, gray or RGB(A), -> float32 [H, W] in [0, 1]."""
    a = np.asarray(image)
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else max(float(a.max()), 1e-6))
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(a, 0.0, 1.0)


@functools.lru_cache(maxsize=1)
def bundled_images() -> tuple[np.ndarray, ...]:
    """The bundled photographs (gray). Raises if none of the three libraries is importable."""
    images: list[np.ndarray] = []
    try:
        import skimage.data as skdata

        for name in SKIMAGE_BUNDLED:
            try:
                images.append(to_gray(getattr(skdata, name)()))
            except Exception as err:  # noqa: BLE001 - a missing file must never trigger a download
                warnings.warn(f"skimage.data.{name} unavailable offline: {err}", stacklevel=2)
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_image

        images += [to_gray(load_sample_image(name)) for name in SKLEARN_BUNDLED]
    except ImportError:
        pass
    from matplotlib import cbook

    for name in MATPLOTLIB_BUNDLED:
        with cbook.get_sample_data(name) as f:
            import matplotlib.image as mpimg

            images.append(to_gray(mpimg.imread(f, format="jpg")))
    return tuple(images)


def procedural_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Multi-scale Gaussian-filtered noise or smoothed random blobs, [H, W] in [0, 1]."""
    h, w = shape
    if rng.random() < 0.5:
        out = np.zeros(shape, np.float32)
        for sigma in rng.uniform(1.0, max(h, w) / 8, size=3):
            layer = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
            out += rng.uniform(0.3, 1.0) * layer / (layer.std() + 1e-6)
    else:
        blobs = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                        rng.uniform(2.0, 6.0)) > 0
        out = ndimage.gaussian_filter(blobs.astype(np.float32), rng.uniform(0.5, 1.5))
        out += 0.1 * ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.0)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


@functools.lru_cache(maxsize=1)
def dem() -> np.ndarray:
    """matplotlib's bundled Jacksboro fault DEM, float32 [344, 403] elevation (m)."""
    from matplotlib import cbook

    return np.asarray(cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"], np.float32)


def write_stand_in_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """`n` generated `size` x `size` gray PNG textures under `folder` (offline checks of the
    image-folder sources)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        texture = ndimage.gaussian_filter(rng.uniform(0, 1, (size, size)), 2.0)
        texture = (texture - texture.min()) / max(float(np.ptp(texture)), 1e-6)
        Image.fromarray((255 * texture).astype(np.uint8)).save(folder / f"{i}.png")


def write_stand_in_dlkn(root: Path, split: str, n: int, size: int, template: int,
                        seed: int = 0) -> None:
    """`n` generated DLKN triples of `split` under `root` (`{split}_input/`, `{split}_template/`,
    `{split}_label/<name>_label.txt`, corners shifted by (2, -1) px) for offline checks."""
    import json

    write_stand_in_images(root / f"{split}_input", n, size, seed)
    write_stand_in_images(root / f"{split}_template", n, template, seed + 1)
    (root / f"{split}_label").mkdir(parents=True, exist_ok=True)
    m = (size - template) // 2
    corners = [(m, m), (m + template - 1, m), (m, m + template - 1),
               (m + template - 1, m + template - 1)]
    keys = (("top_left_u", "top_left_v"), ("top_right_u", "top_right_v"),
            ("bottom_left_u", "bottom_left_v"), ("bottom_right_u", "bottom_right_v"))
    location = [{u: x + 2.0, v: y - 1.0} for (u, v), (x, y) in zip(keys, corners)]
    for i in range(n):
        (root / f"{split}_label" / f"{i}_label.txt").write_text(
            json.dumps({"location": location}))

