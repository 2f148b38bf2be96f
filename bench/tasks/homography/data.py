"""Image pairs for homography estimation: the synthetic multimodal generator and two folder loaders.

Every source yields columns `input` [N, s, s], `template` [N, t, t] (float32 in [0, 1], gray) and
`offsets` [N, 4, 2] (px; see `geometry` for the convention), cached as a Hugging Face dataset.

Protocols (geometry only; scales bind the sizes):
* `DLKNProtocol` (Zhao et al., CVPR 2021 / PRISE): an s x s canvas is the input; the template is the
  other modality sampled at H and is t x t; offsets U(-rho, rho) around c0 = margin + square.
* `DHNProtocol` (DeTone et al. 2016; IHN, Cao et al. CVPR 2022): the image is resized to a canvas
  (320 x 240 published), the input is a P x P patch at a random place >= rho from the border, the
  template is the other modality sampled at H (s = t = P, margin 0), offsets U(-rho, rho).

Modalities (applied to the canvas, A -> input, B -> template): `same`, `photometric` (gamma,
contrast, shading, blur, noise), `thermal` (a random non-monotonic intensity map), `edges` (Sobel
magnitude), `map` (flat-colour quantisation with dark region borders), `dem` (hillshade of
matplotlib's DEM vs its coloured elevation with contour lines).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import gin
import numpy as np
import torch
from kornia.geometry.transform import warp_perspective
from matplotlib import colormaps
from matplotlib.colors import LightSource
from scipy import ndimage

from bench.tasks.dataset_cache import cached_dataset
from bench.tasks.homography import sources
from bench.tasks.homography.geometry import homography_to_offsets, offsets_to_homography

RECIPE_VERSION = 1  # bump when the generator changes: it is part of the cache key
MODALITIES = ("same", "photometric", "thermal", "edges", "map", "dem")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


# --- protocols -----------------------------------------------------------------------------------
@gin.configurable(module="bench.tasks.homography")
class DLKNProtocol:
    """s x s input, t x t template, offsets U(-rho, rho) (published: 192, 128, 32)."""

    name = "dlkn"

    def __init__(self, input_size: int = 96, template_size: int = 64, rho: float = 8.0) -> None:
        if (input_size - template_size) % 2 or rho > (input_size - template_size) / 2:
            raise ValueError("DLKN protocol needs an even margin (s - t) / 2 >= rho, got "
                             f"s={input_size}, t={template_size}, rho={rho}")
        self.input_size, self.template_size, self.rho = input_size, template_size, rho
        self.canvas = (input_size, input_size)

    def origin(self, rng: np.random.Generator) -> tuple[int, int]:
        return 0, 0

    def params(self) -> dict:
        return dict(protocol=self.name, s=self.input_size, t=self.template_size, rho=self.rho)


@gin.configurable(module="bench.tasks.homography")
class DHNProtocol:
    """P x P patch of a (height x width) canvas, offsets U(-rho, rho) (published: 128, 240 x 320, 32)."""

    name = "dhn"

    def __init__(self, patch: int = 64, canvas: tuple[int, int] = (120, 160), rho: float = 16.0) -> None:
        if min(canvas) < patch + 2 * rho:
            raise ValueError(f"canvas {canvas} too small for patch {patch} and rho {rho}")
        self.input_size = self.template_size = patch
        self.rho, self.canvas = rho, tuple(canvas)

    def origin(self, rng: np.random.Generator) -> tuple[int, int]:
        r = math.ceil(self.rho)
        return (int(rng.integers(r, self.canvas[1] - self.input_size - r + 1)),
                int(rng.integers(r, self.canvas[0] - self.input_size - r + 1)))

    def params(self) -> dict:
        return dict(protocol=self.name, s=self.input_size, rho=self.rho, canvas=list(self.canvas))


# --- modalities ----------------------------------------------------------------------------------
def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.from_numpy(ndimage.gaussian_filter(x.numpy(), sigma, mode="nearest"))


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x - x.min()
    return x / x.max().clamp_min(1e-6)


def render(gray: np.ndarray, modality: str, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Modality B of a gray canvas [H, W] in [0, 1] -> [H, W] float32 in [0, 1]."""
    g = torch.from_numpy(np.ascontiguousarray(gray, dtype=np.float32))
    if modality == "same":
        out = g
    elif modality == "photometric":
        h, w = g.shape
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        a = rng.uniform(-1, 1, size=2)
        shading = 0.2 * (float(a[0]) * xx + float(a[1]) * yy)
        out = rng.uniform(0.6, 1.4) * g ** rng.uniform(0.5, 2.0) + shading + rng.uniform(-0.2, 0.2)
        out = _blur(out, rng.uniform(0.5, 1.2)) if rng.random() < 0.5 else out
    elif modality == "thermal":  # non-monotonic LUT: a sum of 2-3 Gaussian bumps of the intensity
        bumps = int(rng.integers(2, 4))
        c, s, a = (rng.uniform(lo, hi, size=bumps) for lo, hi in ((0, 1), (0.08, 0.25), (0.4, 1)))
        levels = np.linspace(0, 1, 256)
        lut = (a * np.exp(-0.5 * ((levels[:, None] - c) / s) ** 2)).sum(1)  # [256] LUT
        lut = (lut - lut.min()) / max(float(np.ptp(lut)), 1e-6)
        out = _blur(torch.from_numpy(np.interp(gray, levels, lut).astype(np.float32)), 1.0)
        out = 1 - out if rng.random() < 0.5 else out
    elif modality == "edges":
        smooth = _blur(g, 1.0).numpy()
        mag = torch.from_numpy(np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1)))
        out = (mag / torch.quantile(mag, 0.99).clamp_min(1e-6)).clamp(0, 1)
        out = 1 - out if rng.random() < 0.5 else out
    elif modality == "map":  # flat colours by intensity quantiles, random palette, dark borders
        smooth = _blur(g, 2.0)
        levels = int(rng.integers(5, 8))
        edges = torch.quantile(smooth, torch.linspace(0, 1, levels + 1)[1:-1])
        label = torch.bucketize(smooth, edges)
        out = torch.from_numpy(rng.uniform(0.3, 1.0, size=levels).astype(np.float32))[label]
        border = (label[1:, :] != label[:-1, :])[:, :-1] | (label[:, 1:] != label[:, :-1])[:-1, :]
        out[:-1, :-1][border] = 0.1
    else:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    out = out + noise * torch.from_numpy(rng.standard_normal(out.shape).astype(np.float32))
    return out.clamp(0, 1).numpy()


def render_dem(elev: np.ndarray, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """(hillshade, coloured elevation + contours) of one DEM crop [H, W] (m), both in [0, 1]."""
    light = LightSource(azdeg=rng.uniform(0, 360), altdeg=rng.uniform(30, 60))
    shade = light.hillshade(elev, vert_exag=rng.uniform(0.5, 2.0), dx=10.0, dy=10.0)
    z = (elev - elev.min()) / max(float(np.ptp(elev)), 1e-6)
    rgb = colormaps["terrain"](z)[..., :3]
    colour = rgb @ np.array([0.299, 0.587, 0.114])
    step = rng.uniform(0.08, 0.15)
    band = np.floor(z / step)
    contour = np.zeros_like(z, dtype=bool)
    contour[1:, :] |= band[1:, :] != band[:-1, :]
    contour[:, 1:] |= band[:, 1:] != band[:, :-1]
    colour = np.where(contour, 0.15, colour)
    colour = colour + noise * rng.standard_normal(colour.shape)
    return shade.astype(np.float32), np.clip(colour, 0, 1).astype(np.float32)


# --- the generator -------------------------------------------------------------------------------
def _crop_resized(image: np.ndarray, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of `image`, resized to `shape` (downscaled by a random factor when possible)."""
    h, w = shape
    need = max(h / image.shape[0], w / image.shape[1])
    factor = rng.uniform(need, max(need, 1.0)) if need < 1 else need
    ch, cw = min(image.shape[0], math.ceil(h / factor)), min(image.shape[1], math.ceil(w / factor))
    y, x = rng.integers(0, image.shape[0] - ch + 1), rng.integers(0, image.shape[1] - cw + 1)
    crop = torch.from_numpy(np.ascontiguousarray(image[y:y + ch, x:x + cw]))[None, None]
    return torch.nn.functional.interpolate(crop, size=shape, mode="bilinear", antialias=True,
                                           align_corners=False)[0, 0].numpy()


def gradient_energy(image: np.ndarray) -> float:
    """Mean absolute finite-difference gradient of an image in [0, 1] (texture measure)."""
    return float(np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean())


def warp_template(canvas_b: np.ndarray, offsets: np.ndarray, origins: np.ndarray, s: int,
                  t: int) -> np.ndarray:
    """Templates [N, t, t] = canvas_b sampled at origin + H(x) (kornia DLT + warp_perspective)."""
    w = torch.from_numpy(offsets).double()
    shift = torch.eye(3, dtype=torch.float64).repeat(len(w), 1, 1)
    shift[:, :2, 2] = torch.from_numpy(origins).double()
    to_canvas = shift @ offsets_to_homography(w, s, t)  # template px -> canvas px
    out = warp_perspective(torch.from_numpy(canvas_b).double()[:, None], torch.linalg.inv(to_canvas),
                           dsize=(t, t), align_corners=True)
    return out[:, 0].float().numpy()


def make_pairs(n: int, protocol: DLKNProtocol | DHNProtocol, modality: str, seed: int,
               noise: float = 0.02, min_gradient: float = 0.03,
               images: list[np.ndarray] | None = None, procedural: float = 0.3) -> dict[str, np.ndarray]:
    """Generate n pairs. `images`: the source pool (default: the bundled images); a fraction
    `procedural` of the canvases are procedural textures instead; `modality='dem'` uses the DEM.
    Crops whose input has gradient energy below `min_gradient` are redrawn (texture-poor)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    rng = np.random.default_rng(seed)
    pool = list(images) if images is not None else list(sources.bundled_images())
    s, t, rho = protocol.input_size, protocol.template_size, protocol.rho
    inputs, canvases, origins = [], [], []
    while len(inputs) < n:
        for _attempt in range(100):
            if modality == "dem":
                a, b = render_dem(_crop_resized(sources.dem(), protocol.canvas, rng), rng, noise)
            else:
                if images is None and rng.random() < procedural:
                    gray = sources.procedural_texture(rng, protocol.canvas)
                else:
                    gray = _crop_resized(pool[int(rng.integers(len(pool)))], protocol.canvas, rng)
                a, b = gray, None
            ox, oy = protocol.origin(rng)
            crop = a[oy:oy + s, ox:ox + s]
            if gradient_energy(crop) >= min_gradient:
                b = render(a, modality, rng, noise) if b is None else b
                break
        else:
            raise RuntimeError(f"no textured crop found in 100 tries (min_gradient={min_gradient})")
        inputs.append(crop)
        canvases.append(b)
        origins.append((ox, oy))
    offsets = rng.uniform(-rho, rho, size=(n, 4, 2))
    templates = warp_template(np.stack(canvases), offsets, np.asarray(origins, np.float64), s, t)
    return {"input": np.stack(inputs).astype(np.float32), "template": templates,
            "offsets": offsets.astype(np.float32)}


@gin.configurable(module="bench.tasks.homography")
class SyntheticPairs:
    """The offline multimodal generator (bundled images + procedural textures, or the DEM)."""

    def __init__(self, modality: str = "same", noise: float = 0.02, min_gradient: float = 0.03,
                 procedural: float = 0.3) -> None:
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        self.modality, self.noise, self.min_gradient, self.procedural = (
            modality, noise, min_gradient, procedural)

    def missing(self) -> str:
        """Generated data: nothing is ever missing."""
        return ""

    def load(self, split: str, n: int, protocol, seed: int):
        params = dict(recipe=RECIPE_VERSION, split=split, n=n, modality=self.modality,
                      noise=self.noise, min_gradient=self.min_gradient,
                      procedural=self.procedural, seed=seed, **protocol.params())
        return cached_dataset("homography", params, lambda: make_pairs(
            n, protocol, self.modality, 2 * seed + (split == "test"), self.noise,
            self.min_gradient, procedural=self.procedural))


# --- real data -----------------------------------------------------------------------------------
def first_missing(listing) -> str:
    """'' when `listing(split)` finds the files of 'train' and 'test', else its
    `FileNotFoundError` message (one line naming the expected files)."""
    try:
        for split in ("train", "test"):
            listing(split)
    except FileNotFoundError as err:
        return str(err)
    return ""


def read_gray(path: Path) -> np.ndarray:
    """An image file -> float32 [H, W] in [0, 1] (clear error when unreadable)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return sources.to_gray(np.asarray(im.convert("L")))
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


@gin.configurable(module="bench.tasks.homography")
class ImageFolderPairs:
    """Pairs made from any local folder of photographs (e.g. MSCOCO train2014/val2014), DHN
    protocol or any other, modality `same` by default. `root` holds the training images, `test_root`
    the test images (default: a fixed hash-based 10% of `root`). Test pairs use a fixed seed."""

    def __init__(self, root: str = "", test_root: str | None = None,
                 modality: str = "same", noise: float = 0.0, min_gradient: float = 0.03) -> None:
        self.root, self.test_root = root, test_root
        self.modality, self.noise, self.min_gradient = modality, noise, min_gradient

    def files(self, split: str) -> list[Path]:
        folder = Path(self.test_root if split == "test" and self.test_root else
                      self.root or "(unbound: bind bench.tasks.homography.ImageFolderPairs.root)")
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist (expected a folder of "
                                    f"{'/'.join(IMAGE_SUFFIXES)} files, e.g. MSCOCO train2014/)")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if self.test_root is None:
            import zlib

            files = [p for p in files if (zlib.crc32(p.name.encode()) % 10 == 0) == (split == "test")]
        if not files:
            raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images for split {split!r} "
                                    f"in {folder}")
        return files

    def missing(self) -> str:
        """'' when the image folders of both splits are there, else one line naming them."""
        return first_missing(self.files)

    def load(self, split: str, n: int, protocol, seed: int):
        files = self.files(split)
        params = dict(recipe=RECIPE_VERSION, split=split, n=n, root=str(Path(files[0]).parent),
                      files=[f.name for f in files], modality=self.modality, noise=self.noise,
                      seed=seed, **protocol.params())

        def build() -> dict[str, np.ndarray]:
            images = [read_gray(f) for f in files]
            return make_pairs(n, protocol, self.modality, 2 * seed + (split == "test"), self.noise,
                              self.min_gradient, images=images, procedural=0.0)

        return cached_dataset("homography-folder", params, build)


LABEL_KEYS = (("top_left_u", "top_left_v"), ("top_right_u", "top_right_v"),
              ("bottom_left_u", "bottom_left_v"), ("bottom_right_u", "bottom_right_v"))


def read_label(path: Path) -> np.ndarray:
    """A DLKN `<name>_label.txt` (JSON {"location": [{top_left_u, top_left_v}, ...]}) -> [4, 2]."""
    try:
        location = json.loads(path.read_text())["location"]
        return np.array([[float(location[k][u]), float(location[k][v])]
                         for k, (u, v) in enumerate(LABEL_KEYS)])
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ValueError(f"malformed DLKN label {path}: expected JSON {{\"location\": [4 dicts with "
                         f"{', '.join(k for pair in LABEL_KEYS for k in pair)}]}} ({err})") from err


@gin.configurable(module="bench.tasks.homography")
class DLKNFolder:
    """The DLKN on-disk format used for GoogleEarth / GoogleMap / MSCOCO (as read by IHN):
    `{root}/{split}_input/<name>.<ext>` (192 x 192), `{root}/{split}_template/<name>.<ext>`
    (128 x 128), `{root}/{split}_label/<name>_label.txt` (perturbed corners in input px).
    Splits: `train_split` for 'train', `test_split` for 'test'. Files f times the protocol's sizes
    (f integer) are downscaled exactly (labels re-derived through H). n <= 0: all pairs."""

    def __init__(self, root: str = "", train_split: str = "train2014",
                 test_split: str = "val2014") -> None:
        self.root = Path(root or "(unbound: bind bench.tasks.homography.DLKNFolder.root)")
        self.splits = {"train": train_split, "test": test_split}

    def triples(self, split: str) -> list[tuple[Path, Path, Path]]:
        name = self.splits[split]
        folders = [self.root / f"{name}_{kind}" for kind in ("input", "template", "label")]
        expected = (f"{folders[0]}/<name>.jpg, {folders[1]}/<name>.jpg, "
                    f"{folders[2]}/<name>_label.txt")
        for folder in folders:
            if not folder.is_dir():
                raise FileNotFoundError(f"DLKN folder {folder} is missing; expected {expected}")
        inputs = sorted(p for p in folders[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not inputs:
            raise FileNotFoundError(f"no images in {folders[0]}; expected {expected}")
        out = []
        for p in inputs:
            template = folders[1] / p.name
            label = folders[2] / f"{p.stem}_label.txt"
            for needed in (template, label):
                if not needed.is_file():
                    raise FileNotFoundError(f"{needed} is missing (pair of {p}); expected {expected}")
            out.append((p, template, label))
        return out

    def missing(self) -> str:
        """'' when the DLKN folders of both splits are complete, else one line naming them."""
        return first_missing(self.triples)

    def load(self, split: str, n: int, protocol, seed: int):
        triples = self.triples(split)
        if 0 < n < len(triples):
            triples = triples[:n]
        params = dict(recipe=RECIPE_VERSION, root=str(self.root.resolve()), split=self.splits[split],
                      files=[p.name for p, _, _ in triples], **protocol.params())
        return cached_dataset("homography-dlkn", params, lambda: read_dlkn(triples, protocol))


def read_dlkn(triples: list[tuple[Path, Path, Path]], protocol) -> dict[str, np.ndarray]:
    """Read DLKN triples into columns, downscaling by an integer factor to the protocol's sizes."""
    s, t = protocol.input_size, protocol.template_size
    inputs, templates, offsets = [], [], []
    for input_path, template_path, label_path in triples:
        image, template = read_gray(input_path), read_gray(template_path)
        big_s, big_t = image.shape[0], template.shape[0]
        f = big_s // s
        if image.shape != (big_s, big_s) or template.shape != (big_t, big_t) or f < 1 or \
                (big_s, big_t) != (f * s, f * t):
            raise ValueError(f"{input_path} / {template_path}: sizes {image.shape} / "
                             f"{template.shape} are not an integer multiple of the protocol's "
                             f"{s} x {s} / {t} x {t}")
        corners = torch.from_numpy(read_label(label_path))
        hom = offsets_to_homography(corners[None] - torch.tensor(
            [[0.0, 0.0], [big_t - 1, 0.0], [0.0, big_t - 1], [big_t - 1, big_t - 1]],
            dtype=torch.float64) - (big_s - big_t) / 2, big_s, big_t)[0]
        scale = torch.tensor([[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2], [0, 0, 1]], dtype=torch.float64)
        hom = torch.linalg.inv(scale) @ hom @ scale  # new template px -> new input px
        offsets.append(homography_to_offsets(hom, s, t).numpy())
        if f > 1:
            image = image.reshape(s, f, s, f).mean(axis=(1, 3))
            template = template.reshape(t, f, t, f).mean(axis=(1, 3))
        inputs.append(image)
        templates.append(template)
    return {"input": np.stack(inputs).astype(np.float32),
            "template": np.stack(templates).astype(np.float32),
            "offsets": np.stack(offsets).astype(np.float32)}
