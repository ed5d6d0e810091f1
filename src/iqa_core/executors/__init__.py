"""Executors: the same pipeline stages in one process (``local``), in one worker process per
device (``devices``), or as Ray Data steps over actor pools (``ray``)."""

from .devices import WorkerFailed
from .dispatch import iter_pipeline, iter_rows, run_pipeline

__all__ = ["WorkerFailed", "iter_pipeline", "iter_rows", "run_pipeline"]
