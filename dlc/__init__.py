"""Deep Loss Convexification (DLC; Zhang et al., arXiv:2411.10649) for PyTorch.

``StarConvexLoss`` adds hinge penalties from mu-strong star-convexity around the ground truth to
any per-sample loss; the spaces define how the ground truth is perturbed; ``violation_rate`` and
the slices diagnose the resulting landscape; ``dlc.functional`` holds the loss maths as flat
functions.
"""

from dlc import functional
from dlc.landscape import slice_1d, slice_2d, violation_rate
from dlc.loss import StarConvexLoss, StarConvexResult
from dlc.rotations import RigidTransform, Rotation
from dlc.spaces import Euclidean, Homography, Simplex, Space

__all__ = [
    "functional",
    "StarConvexLoss",
    "StarConvexResult",
    "Space",
    "Euclidean",
    "Simplex",
    "Rotation",
    "RigidTransform",
    "Homography",
    "violation_rate",
    "slice_1d",
    "slice_2d",
]
