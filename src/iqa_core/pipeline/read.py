"""Stage 1, read: read and hash images in worker threads ahead of use; decode, within the byte
budget, those whose result is not stored already."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..api import ImageResult
from ..errors import IQAError
from ..images import LeastSize, LoadedImage, content_hash, decode_loaded, decoded_bytes, read_file
from .budget import ByteBudget

Lookup = Callable[[str, str], "ImageResult | None"]  # (path, content hash) -> the stored result


@dataclass
class Decoded:
    """One input after reading: its pixels, its stored result or its error, and the budget bytes it holds."""

    index: int
    path: str
    loaded: LoadedImage | None
    error: str | None
    nbytes: int
    cached: ImageResult | None = None


def _read(path: str, max_pixels: int, least: LeastSize | None, lookup: Lookup) -> LoadedImage | ImageResult | str:
    """Read and hash once; a stored result is not decoded (a rerun costs a read and a look-up)."""
    try:
        data = read_file(path)
        digest = content_hash(data)
        return lookup(path, digest) or decode_loaded(path, data, digest, max_pixels, least)
    except IQAError as exc:
        return str(exc)


class ReadAhead:
    """Paths in input order -> :class:`Decoded`, decoding up to ``depth`` images ahead.

    ``paths`` is read as it goes (a manifest streams through): only the inputs read ahead
    and not yet given are held. An image is decoded only once its pixel bytes (known from
    the header) fit the budget; the bytes are held until the image is finished downstream.
    Reading ahead never blocks: only :meth:`next` waits for room, when nothing is decoded
    ahead. ``least`` lets JPEGs decode reduced (``regions.prescale``), and the budget counts
    what they decode to. ``lookup`` finds an input's stored result by its content hash,
    before it is decoded.
    """

    def __init__(
        self,
        paths: Iterable[str],
        budget: ByteBudget,
        stop: threading.Event,
        max_pixels: int,
        workers: int,
        depth: int,
        lookup: Lookup,
        least: LeastSize | None = None,
    ) -> None:
        self._source = iter(paths)
        self._paths: dict[int, str] = {}  # inputs taken from the source and not yet given
        self._taken = 0
        self.budget = budget
        self.stop = stop
        self.max_pixels = max_pixels
        self.depth = max(1, depth)
        self.least = least
        self.lookup = lookup
        self._sizes: dict[int, int] = {}
        self._pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="iqa-read")
        self._ahead: deque[tuple[int, Future[LoadedImage | ImageResult | str]]] = deque()
        self._submitted = 0
        self._given = 0

    def has(self, index: int) -> bool:
        """Whether there is an input ``index`` (taking inputs from the source up to it)."""
        while self._taken <= index:
            path = next(self._source, None)
            if path is None:
                return False
            self._paths[self._taken] = path
            self._taken += 1
        return True

    def size(self, index: int) -> int:
        """The budget bytes input ``index`` (one :meth:`has` said exists) needs: its decoded RGB size."""
        if index not in self._sizes:
            self._sizes[index] = decoded_bytes(self._paths[index], self.max_pixels, self.least)
        return self._sizes[index]

    def next(self) -> Decoded | None:
        """The next input (one :meth:`has` said exists), decoded; None once stopped."""
        index = self._given
        self._fill()
        if not self._ahead:  # nothing ahead: wait for room for this one
            if not self.budget.acquire(self.size(index), self.stop):
                return None
            self._submit()
        _, future = self._ahead.popleft()
        self._given += 1
        self._fill()
        out = future.result()
        path, nbytes = self._paths.pop(index), self._sizes.pop(index)
        if isinstance(out, str):
            self.budget.release(nbytes)
            return Decoded(index, path, None, out, 0)
        if isinstance(out, ImageResult):
            self.budget.release(nbytes)
            return Decoded(index, path, None, None, 0, out)
        return Decoded(index, path, out, None, nbytes)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while (
            self.has(self._submitted)
            and len(self._ahead) < self.depth
            and self.budget.try_acquire(self.size(self._submitted))
        ):
            self._submit()

    def _submit(self) -> None:
        index = self._submitted
        read = self._pool.submit(_read, self._paths[index], self.max_pixels, self.least, self.lookup)
        self._ahead.append((index, read))
        self._submitted += 1
