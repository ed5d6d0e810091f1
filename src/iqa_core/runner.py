"""Executors: one process (``local``), one worker process per device, or Ray (``ray``).

All three give the same results in input order and the same store rows: device
workers share the store file (SQLite WAL); Ray workers send their rows back to
the driver, which writes them, since cluster nodes share no disk.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from .api import ImageResult
from .engine import Pipeline
from .errors import IQAError
from .images import expand_inputs


class WorkerFailed(IQAError):
    """A device worker died (killed, out of memory, a crash in native code): exit status 3."""

    exit_code = 3


def run_pipeline(pipeline: Pipeline, inputs: Iterable[str | Path], progress: bool = False) -> list[ImageResult]:
    """Score ``inputs`` with the recipe's executor; results in input order, errors as rows.

    Inputs none of which exist are a usage error (a mistyped folder); otherwise each
    missing one becomes an error row.
    """
    runtime = pipeline.recipe.runtime
    inputs = list(inputs)
    paths = expand_inputs(inputs)
    if not any(Path(p).exists() for p in paths):
        raise IQAError(f"no images found in: {', '.join(map(str, inputs))}")
    if runtime.executor == "ray":
        from .ray_executor import run_on_ray

        by_path = run_on_ray(pipeline, paths, progress)
        return [by_path[p] for p in paths]
    devices = runtime.devices or []
    if len(devices) > 1:
        by_path = _run_per_device(pipeline, paths, devices)
        return [by_path[p] for p in paths]
    if not devices:
        return pipeline.score_many(paths, progress=progress)
    placed = Pipeline.from_recipe(worker_recipe(pipeline, devices[0]), pipeline.store)
    results = placed.score_many(paths, progress=progress)
    pipeline.stats.update(placed.stats)
    return results


def worker_recipe(pipeline: Pipeline, device: str | None) -> dict[str, Any]:
    """The recipe as a plain dict for a worker, its models placed on ``device``."""
    data = pipeline.recipe.model_dump(mode="json")
    data["runtime"].update(executor="local", devices=None)
    if device is not None:
        specs = [data["segmenter"], *data["scorers"]]
        comps = [pipeline.segmenter, *(scorer for _, scorer, _ in pipeline.scorers)]
        for spec, comp in zip(specs, comps):
            if "device" in type(comp.params).model_fields:
                spec["params"]["device"] = device
    return data


def _run_per_device(pipeline: Pipeline, paths: Sequence[str], devices: Sequence[str]) -> dict[str, ImageResult]:
    """One process per device, each scoring an interleaved share into the shared store file.

    The parent waits on each worker's pipe and process sentinel, so a worker that dies
    is reported at once (what it scored is stored: a rerun resumes). Workers ignore
    SIGINT; on Ctrl-C, or any failure, the parent terminates them.
    """
    store_path = pipeline.recipe.runtime.store
    if store_path is None:
        raise IQAError("runtime.devices lists several devices: that needs a store file (runtime.store)")
    _ = pipeline.store  # the file, its schema and WAL mode, made once before the workers race
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    workers: dict[Connection, tuple[str, Any]] = {}
    by_path: dict[str, ImageResult] = {}
    try:
        for i, device in enumerate(devices):
            reader, writer = context.Pipe(duplex=False)
            args = (worker_recipe(pipeline, device), store_path, list(paths[i :: len(devices)]), writer)
            process = context.Process(target=_device_worker, args=args, daemon=True)
            process.start()
            writer.close()
            workers[reader] = (device, process)
        while workers:
            ready = wait([*workers, *(p.sentinel for _, p in workers.values())])
            for reader, (device, process) in list(workers.items()):
                if reader not in ready and process.sentinel not in ready:
                    continue
                try:
                    status, payload, stats = reader.recv()
                except EOFError:
                    process.join()
                    raise WorkerFailed(
                        f"the worker for device {device} exited (code {process.exitcode}) before finishing; "
                        "what it scored is in the store, so a rerun resumes"
                    ) from None
                if status == "error":
                    raise payload
                pipeline.stats.update(stats)
                by_path.update((r["path"], ImageResult.from_dict(r)) for r in payload)
                del workers[reader]
        return by_path
    finally:
        for _, process in workers.values():
            process.terminate()
            process.join()


def _device_worker(recipe: dict[str, Any], store_path: str, paths: list[str], out: Connection) -> None:
    """Score ``paths`` and send (status, rows or error, stats) to the parent."""
    from .store import Store

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        pipeline = Pipeline.from_recipe(recipe, Store(store_path))
        rows = [r.to_dict() for r in pipeline.score_many(paths)] if paths else []
        out.send(("ok", rows, dict(pipeline.stats)))
    except IQAError as exc:
        try:
            out.send(("error", exc, {}))
        except Exception:  # an attribute that does not pickle: the message is what matters
            out.send(("error", IQAError(str(exc)), {}))
    finally:
        out.close()
