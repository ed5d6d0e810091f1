"""Stage 1, read: read and hash images in worker threads ahead of use; decode, within the byte
budget, those whose result is not stored already."""

from __future__ import annotations

import threading
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


@dataclass
class _Read:
    """An input read and hashed, its result not stored: decoded once its budget bytes fit."""

    data: bytes
    digest: str
    need: int  # budget bytes: its decoded RGB size


def _read(path: str, max_pixels: int, least: LeastSize | None, lookup: Lookup) -> _Read | ImageResult | str:
    """Read and hash once; a stored result is not decoded (a rerun costs a read and a look-up)."""
    try:
        data = read_file(path)
        digest = content_hash(data)
        return lookup(path, digest) or _Read(data, digest, decoded_bytes(data, max_pixels, least))
    except IQAError as exc:
        return str(exc)


def _decode(path: str, read: _Read, max_pixels: int, least: LeastSize | None) -> LoadedImage | str:
    try:
        return decode_loaded(path, read.data, read.digest, max_pixels, least)
    except IQAError as exc:
        return str(exc)


class ReadAhead:
    """Paths in input order -> :class:`Decoded`: files read and hashed up to ``depth`` inputs
    ahead, then decoded, in input order, once their pixel bytes fit the budget.

    ``paths`` is taken as it goes (a manifest streams through): only the inputs read ahead
    and not yet given are held, and their encoded bytes only up to a quarter of the budget.
    An input whose result ``lookup`` finds stored (by its content hash) is never decoded and
    holds no budget. Decoded bytes are held until the image is finished downstream. Reading
    ahead never blocks: only :meth:`next` waits for room, when nothing is decoded ahead.
    ``least`` lets JPEGs decode reduced (``regions.prescale``), and the budget counts what
    they decode to.
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
        self._pool = ThreadPoolExecutor(max(workers, 1), thread_name_prefix="iqa-read")
        self._reads: dict[int, Future[_Read | ImageResult | str] | _Read] = {}  # read or being read, not given
        self._decodes: dict[int, Future[LoadedImage | str]] = {}
        self._next_read = 0
        self._next_decode = 0  # decodes go in input order: the budget is taken in input order
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
        """The budget bytes the next input (one :meth:`has` said exists) needs: 0 for a stored
        result or a file that cannot be read."""
        out = self._read_out(index)
        return out.need if isinstance(out, _Read) else 0

    def next(self) -> Decoded | None:
        """The next input (one :meth:`has` said exists), decoded; None once stopped."""
        index = self._given
        out = self._read_out(index)
        loaded: LoadedImage | str | None = None
        if isinstance(out, _Read):
            if index not in self._decodes:  # nothing decoded ahead: wait for room for this one
                if not self.budget.acquire(out.need, self.stop):
                    return None
                self._decode(index, out)
            loaded = self._decodes.pop(index).result()
        path = self._paths.pop(index)
        del self._reads[index]
        self._given += 1
        self._fill()
        if isinstance(out, str):
            return Decoded(index, path, None, out, 0)
        if isinstance(out, ImageResult):
            return Decoded(index, path, None, None, 0, out)
        if isinstance(loaded, str):
            self.budget.release(out.need)
            return Decoded(index, path, None, loaded, 0)
        return Decoded(index, path, loaded, None, out.need)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _read_out(self, index: int) -> _Read | ImageResult | str:
        self._fill()
        return self._out(index)

    def _out(self, index: int) -> _Read | ImageResult | str:
        read = self._reads[index]
        return read.result() if isinstance(read, Future) else read

    def _fill(self) -> None:
        """Read ahead (``depth`` inputs, a quarter of the budget in encoded bytes); decode ahead
        in input order while the next one's bytes fit the budget now."""
        while (
            self._next_read < self._given + self.depth
            and (self._next_read == self._given or self._encoded() < self.budget.limit // 4)
            and self.has(self._next_read)
        ):
            index = self._next_read
            self._reads[index] = self._pool.submit(_read, self._paths[index], self.max_pixels, self.least, self.lookup)
            self._next_read += 1
        while self._next_decode < self._next_read:
            read = self._reads[self._next_decode]
            if isinstance(read, Future) and not read.done():
                return
            out = self._out(self._next_decode)
            if not isinstance(out, _Read):  # a stored result or an error: nothing to decode
                self._next_decode += 1
            elif self.budget.try_acquire(out.need):
                self._decode(self._next_decode, out)
            else:
                return

    def _decode(self, index: int, read: _Read) -> None:
        """Decode input ``index`` (the next in input order), its budget bytes taken."""
        self._decodes[index] = self._pool.submit(_decode, self._paths[index], read, self.max_pixels, self.least)
        self._reads[index] = _Read(b"", read.digest, read.need)  # the file's bytes go with the decode
        self._next_decode = index + 1

    def _encoded(self) -> int:
        """File bytes read and waiting to be decoded."""
        held = 0
        for index in range(self._next_decode, self._next_read):
            read = self._reads[index]
            if not isinstance(read, Future) or read.done():
                out = self._out(index)
                held += len(out.data) if isinstance(out, _Read) else 0
        return held
