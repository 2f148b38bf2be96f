"""Task family `registration`: rigid 3-D point-cloud registration (DCP / PRNet-like networks,
learned-feature ICP, ICP), on an offline synthetic ModelNet-like set or local ModelNet40 HDF5 files. Importing the package
registers its gin configurables (`bench.tasks.registration.*`)."""

from bench.tasks.registration.feature_icp import FeatureICP
from bench.tasks.registration.models import DCPNet, ICPOnly
from bench.tasks.registration.spaces import EntryNoise
from bench.tasks.registration.task import Outputs, Registration, RootMean

__all__ = ["DCPNet", "EntryNoise", "FeatureICP", "ICPOnly", "Outputs", "Registration", "RootMean"]
