"""dlc-bench: a gin-driven benchmark suite for Deep Loss Convexification (see README.md)."""

__version__ = "0.1.0"
