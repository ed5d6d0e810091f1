"""The stages running at once, joined by bounded queues.

    read (decode threads) -> segment (thread) -> batch + prepare (thread) -> score + finish (caller)

Segmentation of the next images overlaps scoring of the previous ones, and the next batch
is prepared while this one is scored. Queues hold one message, and decoded pixels in
flight are bounded by the byte budget (``runtime.max_inflight_mb``). Images finish in
input order, each as soon as its last view is in.
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


def run(
    pipeline: Pipeline,
    items: Callable[[threading.Event], Iterator[Item | Flush]],
    release: Callable[[int], None],
) -> Iterator[ImageResult]:
    """Results in input order. ``items(stop)`` is the read and segment stages' output;
    ``release`` gives a finished image's budget bytes back."""
    stop = threading.Event()
    ledger = Ledger()
    segmented: queue.Queue[Any] = queue.Queue(maxsize=1)
    batches: queue.Queue[Any] = queue.Queue(maxsize=1)
    threads = [
        threading.Thread(target=_pump, args=(lambda: items(stop), segmented, stop), name="iqa-segment"),
        threading.Thread(
            target=_pump,
            args=(lambda: score.prepared(pipeline, _drain(segmented, stop), ledger), batches, stop),
            name="iqa-prepare",
        ),
    ]
    for thread in threads:
        thread.start()
    waiting: deque[Item] = deque()  # in input order; an image's views are all claimed before it arrives
    try:
        for message in _drain(batches, stop):
            if isinstance(message, score.Batch):
                score.forward(pipeline, ledger, message)
            else:
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
