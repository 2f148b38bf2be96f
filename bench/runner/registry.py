"""Import every module that registers gin configurables, once per process.

gin registrations are global and permanent (re-importing raises), so every process that parses a
config imports this module first (through `bench.runner.config.setup_gin`). A new task family adds its
module here. The `dlc` target spaces are registered under `dlc.*` (e.g. `@dlc.Euclidean()`).
`bench.matrix.Matrix` registers itself when `bench.runner.matrix` is imported (only the driver reads matrix
files), so this module imports nothing that imports `bench.runner.config`: no import circle.
"""

import gin

import bench.metrics  # noqa: F401
import bench.objectives  # noqa: F401
import bench.runner.experiment  # noqa: F401
import bench.runner.torch_configurables  # noqa: F401
import bench.tasks.alignment1d  # noqa: F401
import bench.tasks.homography  # noqa: F401
import bench.tasks.registration  # noqa: F401
import bench.tasks.sequence  # noqa: F401
import dlc

for _space in (dlc.Euclidean, dlc.Simplex, dlc.Rotation, dlc.RigidTransform, dlc.Homography):
    gin.external_configurable(_space, module="dlc")
