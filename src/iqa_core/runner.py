"""``from iqa_core.runner import run_pipeline`` keeps working: executors live in :mod:`iqa_core.executors`."""

from .executors import WorkerFailed, run_pipeline

__all__ = ["WorkerFailed", "run_pipeline"]
