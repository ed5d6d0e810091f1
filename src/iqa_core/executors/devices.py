"""One worker process per device (``runtime.devices``), all sharing the store file.

Workers share the store file (SQLite WAL) and give the results a single process would.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from ..api import ImageResult
from ..errors import IQAError
from ..store import Store
from .placement import thread_share, worker_recipe

if TYPE_CHECKING:
    from ..pipeline import Pipeline


class WorkerFailed(IQAError):
    """A device worker died (killed, out of memory, a crash in native code): exit status 3."""

    exit_code = 3


def run_per_device(pipeline: Pipeline, paths: Sequence[str], devices: Sequence[str]) -> dict[str, ImageResult]:
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
    threads = thread_share(len(devices))
    workers: dict[Connection, tuple[str, Any]] = {}
    by_path: dict[str, ImageResult] = {}
    try:
        for i, device in enumerate(devices):
            reader, writer = context.Pipe(duplex=False)
            share = list(paths[i :: len(devices)])
            args = (type(pipeline), worker_recipe(pipeline, device), store_path, share, threads, writer)
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


def _device_worker(
    factory: type[Pipeline],
    recipe: dict[str, Any],
    store_path: str,
    paths: list[str],
    threads: dict[str, str],
    out: Connection,
) -> None:
    """Score ``paths`` and send (status, rows or error, stats) to the parent.

    ``threads`` is set before anything imports torch, which sizes its thread pool from it.
    """
    os.environ.update(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        pipeline = factory.from_recipe(recipe, Store(store_path))
        rows = [r.to_dict() for r in pipeline.iter_paths(paths)]
        out.send(("ok", rows, dict(pipeline.stats)))
    except IQAError as exc:
        try:
            out.send(("error", exc, {}))
        except Exception:  # an attribute that does not pickle: the message is what matters
            out.send(("error", IQAError(str(exc)), {}))
    finally:
        out.close()
