"""Colours and markers of the objectives: fixed for the known ones (Okabe-Ito, readable in
greyscale by marker), a deterministic hash of the name for any other, into a palette that keeps
only colours far from every known one (`MIN_COLOUR_DISTANCE`), so that an objective looks the same
in every report and a new one never looks like plain."""

from __future__ import annotations

import hashlib

import numpy as np

#: fixed (colour, marker) per known objective (Okabe-Ito colours, readable in greyscale by marker)
KNOWN_STYLES: dict[str, tuple[str, str]] = {
    "plain": ("#0072B2", "o"),
    "dlc": ("#D55E00", "s"),
    "dlc_max": ("#CC79A7", "D"),
    "dlc_adversarial": ("#E69F00", "^"),
    "target_noise": ("#009E73", "v"),
    "margin": ("#56B4E9", "P"),
}
#: candidates for other objectives (Tol's palettes); `_FALLBACK_COLOURS` keeps those far from
#: every known objective's colour and from the reference grey (CIE76 ΔE in Lab)
_CANDIDATES = ("#882255", "#117733", "#332288", "#AA4499", "#44AA99", "#999933", "#661100",
               "#6699CC", "#888888", "#DDCC77", "#AA3377", "#228833", "#CCBB44", "#EE6677",
               "#4477AA", "#66CCEE", "#BBBBBB", "#000000")
MIN_COLOUR_DISTANCE = 30.0


def colour_distance(a: str, b: str) -> float:
    """CIE76 ΔE between two colours (Lab, D65): about 2.3 is just noticeable, 30 clearly apart."""
    from matplotlib.colors import to_rgb
    from skimage.color import rgb2lab

    lab = rgb2lab(np.array([[to_rgb(a), to_rgb(b)]]))[0]
    return float(np.linalg.norm(lab[0] - lab[1]))


def _far_from_known() -> tuple[str, ...]:
    taken = [c for c, _ in KNOWN_STYLES.values()] + ["#444444"]
    return tuple(c for c in _CANDIDATES
                 if min(colour_distance(c, k) for k in taken) >= MIN_COLOUR_DISTANCE)
_FALLBACK_MARKERS = ("X", "*", "h", "<", ">", "p", "d", "8")
REFERENCE_STYLE = dict(color="#444444", linestyle="--", marker=None)
_FALLBACK_COLOURS = _far_from_known()


def style(objective: str) -> tuple[str, str]:
    """(colour, marker) of an objective: fixed for known names, else from a hash of the name
    into `_FALLBACK_COLOURS` (never close to a known objective's colour)."""
    if objective in KNOWN_STYLES:
        return KNOWN_STYLES[objective]
    digest = int(hashlib.sha256(objective.encode()).hexdigest(), 16)
    return (_FALLBACK_COLOURS[digest % len(_FALLBACK_COLOURS)],
            _FALLBACK_MARKERS[(digest // len(_FALLBACK_COLOURS)) % len(_FALLBACK_MARKERS)])


