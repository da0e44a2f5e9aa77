"""shipmate: builds, immutable releases, rolling promotions and instant rollbacks."""

__version__ = "0.1.0"
