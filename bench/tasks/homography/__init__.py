"""Task family `homography`: multimodal 4-corner homography estimation (DHN, DeepLK, PRISE/DLC).

Importing this package registers its gin configurables (`bench.tasks.homography.*`).
"""

from bench.tasks.homography import data, geometry, models, sources, spaces, task  # noqa: F401
from bench.tasks.homography.data import (  # noqa: F401
                                         DHNProtocol,
                                         DLKNFolder,
                                         DLKNProtocol,
                                         ImageFolderPairs,
                                         SyntheticPairs,
                                         make_pairs,
)
from bench.tasks.homography.models import DeepLKFeatures, DHNRegressor, RawPyramid  # noqa: F401
from bench.tasks.homography.task import HomographyTask  # noqa: F401
