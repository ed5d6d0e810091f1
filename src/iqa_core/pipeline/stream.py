"""The stages running at once, joined by bounded queues.

    read (decode threads) -> segment (thread) -> batch + prepare (thread) -> score (thread) -> finish (caller)

Segmentation of the next images overlaps scoring of the previous ones, the next batch is
prepared while this one is scored, and images are finished (aggregated, stored, written
by the caller) while the next batch is scored: the model never waits for the host's
bookkeeping. Images travel between the stages in queues long enough that a stage hands
on many before it waits (a hand-off of one message at a time costs a thread switch each,
~0.1 ms: more than a cached image's whole work); the decoded pixels they hold are bounded
by the byte budget (``runtime.max_inflight_mb``). Prepared batches, whose tensors the
budget does not count, are bounded apart: one being scored and one ready (``_Slots``).
Images finish in input order, each as soon as its last view is in.
An exception in any stage reaches the caller as itself; on any exit the stages stop.
"""

from __future__ import annotations

import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..api import ImageResult
from ..store import StoreError
from . import finish, score
from .batches import Ledger
from .items import Flush, Item

if TYPE_CHECKING:
    from .core import Pipeline

_END = object()
QUEUED = 256  # messages between two stages: cached results and error rows hold no budget bytes


class _Failed:
    """An exception raised in a stage, travelling downstream as data."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(out: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(source: queue.Queue[Any], stop: threading.Event) -> Iterator[Any]:
    """What a stage put into ``source``, until its end; its exception is raised here."""
    while True:
        try:
            item = source.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _END:
            return
        if isinstance(item, _Failed):
            raise item.exc
        yield item


def _pump(items: Callable[[], Iterator[Any]], out: queue.Queue[Any], stop: threading.Event) -> None:
    """A stage's thread: put what ``items()`` yields into ``out``, then the end mark."""
    produced = items()
    try:
        for item in produced:
            if not _put(out, item, stop):
                return
        _put(out, _END, stop)
    except BaseException as exc:  # the caller re-raises it, whatever it is
        _put(out, _Failed(exc), stop)
    finally:
        produced.close()


class _Slots:
    """Room for ``n`` prepared batches at once (being scored or waiting to be)."""

    def __init__(self, n: int, stop: threading.Event) -> None:
        self._free = threading.Semaphore(n)
        self._stop = stop

    def take(self) -> bool:
        """Wait for room; False once stopped."""
        while not self._stop.is_set():
            if self._free.acquire(timeout=0.1):
                return True
        return False

    def give(self) -> None:
        self._free.release()


def _bounded(messages: Iterator[score.Batch | Item], slots: _Slots) -> Iterator[score.Batch | Item]:
    """``messages`` (whose next batch is prepared as it is asked for), asked for only when a
    prepared batch would have room; an image gives its room back at once."""
    while slots.take():
        try:
            message = next(messages)
        except StopIteration:
            return
        if not isinstance(message, score.Batch):
            slots.give()
        yield message


def _scored(
    pipeline: Pipeline, ledger: Ledger, stream: Iterator[score.Batch | Item], slots: _Slots
) -> Iterator[Item | None]:
    """The scoring stage: each batch forwarded (its rows stored and delivered; its room given
    back), then None, so the caller looks for images it completed; each image passed on."""
    for message in stream:
        if isinstance(message, score.Batch):
            try:
                score.forward(pipeline, ledger, message)
            finally:
                slots.give()
            yield None
        else:
            yield message


def run(
    pipeline: Pipeline,
    items: Callable[[threading.Event], Iterator[Item | Flush]],
    release: Callable[[int], None],
) -> Iterator[ImageResult]:
    """Results in input order. ``items(stop)`` is the read and segment stages' output;
    ``release`` gives a finished image's budget bytes back."""
    stop = threading.Event()
    ledger = Ledger()
    slots = _Slots(2, stop)
    segmented: queue.Queue[Any] = queue.Queue(QUEUED)
    batches: queue.Queue[Any] = queue.Queue(QUEUED)
    scored: queue.Queue[Any] = queue.Queue(QUEUED)

    def prepare() -> Iterator[score.Batch | Item]:
        return _bounded(score.prepared(pipeline, _drain(segmented, stop), ledger), slots)

    def forward() -> Iterator[Item | None]:
        return _scored(pipeline, ledger, _drain(batches, stop), slots)

    threads = [
        threading.Thread(target=_pump, args=(lambda: items(stop), segmented, stop), name="iqa-segment"),
        threading.Thread(target=_pump, args=(prepare, batches, stop), name="iqa-prepare"),
        threading.Thread(target=_pump, args=(forward, scored, stop), name="iqa-score"),
    ]
    for thread in threads:
        thread.start()
    waiting: deque[Item] = deque()  # in input order; an image's views are all claimed before it arrives
    try:
        for message in _drain(scored, stop):
            if message is not None:
                waiting.append(message)
            while waiting and waiting[0].missing == 0:
                item = waiting.popleft()
                yield finish.result(pipeline, item)
                release(item.nbytes)
    except StoreError as exc:  # raised ahead, in a stage thread: the images before it were finished since
        saved = f"{pipeline.store.results_saved} results saved"
        raise StoreError(re.sub(r"\d+ results saved", saved, str(exc))) from None
    finally:
        stop.set()
        for thread in threads:
            thread.join()
