"""o2o-edge agent: the in-store daemon that buffers touchpoint events and syncs them upstream."""

__version__ = "0.1.0"
