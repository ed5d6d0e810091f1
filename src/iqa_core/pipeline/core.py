"""The :class:`Pipeline`: a resolved recipe, its models and store, and the public API.

The data path itself lives in the stage modules, in data-flow order: ``read`` ->
``segment`` -> ``views`` -> ``score`` (prepare, forward) -> ``finish``; ``stream`` runs
them at once. Every model output goes to the store first, so nothing is computed twice
and a killed run resumes. A failure confined to one image becomes that image's error
row; failures of the setup (recipe, weights) stop the run with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import ImageResult, RegionAggregator, Scorer, ScorerAggregator, Segmenter, Standard
from ..errors import ImageError
from ..images import LeastSize, LoadedImage, content_hash, iter_inputs, read_file, read_image, to_rgb
from ..plugins import manager
from ..recipe import Resolved, resolve
from ..store import Store
from . import segment, stream
from .budget import ByteBudget
from .items import Flush, Item, from_store
from .read import Decoded, ReadAhead
from .views import Views


class Pipeline:
    """A resolved recipe, ready to score images. Models load on first use, once."""

    def __init__(self, resolved: Resolved, store: Store | None = None) -> None:
        self.resolved = resolved
        self.recipe = resolved.recipe
        self.segmenter: Segmenter = resolved.segmenter  # type: ignore[assignment]
        self.scorers: list[tuple[str, Scorer, Standard]] = resolved.scorers  # type: ignore[assignment]
        self.aggregate: RegionAggregator = resolved.aggregate  # type: ignore[assignment]
        self.ensemble: ScorerAggregator = resolved.ensemble  # type: ignore[assignment]
        self._store = store
        self.store_lock = threading.RLock()  # the stages share one SQLite connection and the prompt-following counts
        self._load_lock = threading.Lock()
        self._prepare_locks = {label: threading.Lock() for label in self.labels}
        self._loaded: set[str] = set()  # "segmenter" and scorer labels already loaded
        # counts, and seconds each stage is busy (segment_s, prepare_s, forward_s)
        self.stats: Counter[str] = Counter()
        self.budget_peak = 0  # most bytes of decoded pixels held at once in the last score_many
        views = self.recipe.regions.views
        self.local_mode = next((v for v in views if v in ("bbox", "mask")), None)
        self.score_whole = "whole" in views
        spec = self.recipe.regions
        self.views = Views(self.local_mode, spec.min_view_side, spec.prescale)  # type: ignore[arg-type]

    @classmethod
    def from_recipe(cls, source: str | Path | Mapping[str, Any], store: Store | None = None) -> Pipeline:
        """A recipe file or dict -> a pipeline (validated; weights load on first use)."""
        return cls(resolve(source), store)

    # ----------------------------------------------------------------- setup
    @property
    def store(self) -> Store:
        """The recipe's store (``runtime.store``), opened on first use, unless one was given."""
        with self.store_lock:
            if self._store is None:
                self._store = Store(self.recipe.runtime.store)
            return self._store

    @store.setter
    def store(self, store: Store) -> None:
        self._store = store

    @property
    def labels(self) -> list[str]:
        return [label for label, _, _ in self.scorers]

    @property
    def segments(self) -> bool:
        return self.local_mode is not None and self.segmenter.local_regions

    @cached_property
    def key(self) -> str:
        """Identity of this recipe's results: everything that changes a final score."""
        parts: dict[str, Any] = {
            "segmenter": self.segmenter.cache_key() if self.segments else None,
            "regions": {**self.recipe.regions.model_dump(mode="json"), "views": sorted(self.recipe.regions.views)},
            "scorers": [(lab, sc.cache_key(), std.prompt_key()) for lab, sc, std in self.scorers],
            "decode": self.recipe.decode,
            "aggregate": self.aggregate.cache_key(),
            "ensemble": self.ensemble.cache_key(),
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def scorer(self, label: str) -> tuple[str, Scorer, Standard]:
        return next(s for s in self.scorers if s[0] == label)

    def prepare_lock(self, label: str) -> threading.Lock:
        """Held around a scorer's ``prepare``: its processor is never used by two threads at once."""
        return self._prepare_locks[label]

    def load(self) -> None:
        """Load every model now (segmenter only if the recipe segments); otherwise on first need."""
        if self.segments:
            self.load_segmenter()
        for label in self.labels:
            self.load_scorer(label)

    def load_segmenter(self) -> None:
        with self._load_lock:
            if "segmenter" not in self._loaded:
                self.segmenter.load()
                self._loaded.add("segmenter")

    def load_scorer(self, label: str) -> None:
        with self._load_lock:
            if label not in self._loaded:
                _, scorer, standard = self.scorer(label)
                scorer.load(standard)
                self._loaded.add(label)

    # ---------------------------------------------------------------- public
    def score(self, image: str | Path | Image.Image) -> ImageResult:
        """Score one image (a path or a PIL image)."""
        if not isinstance(image, Image.Image):
            return self.score_many([image])[0]
        rgb = to_rgb(image)
        digest = hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()[:32]
        decoded = Decoded(
            0, "<image>", LoadedImage("<image>", digest, rgb), None, 0, self.stored_result("<image>", digest)
        )

        def one(stop: threading.Event) -> Iterator[Item]:
            yield segment.to_item(self, decoded)

        return next(self._results(stream.run(self, one, lambda n: None)))

    def score_many(
        self,
        inputs: Iterable[str | Path],
        progress: bool = False,
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> list[ImageResult]:
        """Score files, folders, globs, list files, manifests or URIs; results in input order, errors as rows."""
        return list(self.iter_many(inputs, progress, on_result))

    def iter_many(
        self,
        inputs: Iterable[str | Path],
        progress: bool = False,
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Like :meth:`score_many`, each result as its image finishes: nothing is held for the end,
        and a manifest is read as the run goes."""
        yield from self.iter_paths((path for path, _ in iter_inputs(inputs)), progress, on_result)

    def iter_paths(
        self,
        paths: Iterable[str],
        progress: bool = False,
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Score ``paths`` (files or URIs, as they are: not expanded), each taken when the reader
        gets to it; each result as its image finishes, in their order."""
        runtime = self.recipe.runtime
        budget = ByteBudget(int(runtime.max_inflight_mb * 2**20))
        repaired = self.store.repaired  # damaged store rows found while scoring these are recomputed

        def items(stop: threading.Event) -> Iterator[Item | Flush]:
            depth = 2 * runtime.chunk_images
            reader = ReadAhead(
                paths, budget, stop, runtime.max_pixels, runtime.workers, depth, self.stored_result, self.least_decode
            )
            try:
                yield from segment.items(self, reader)
            finally:
                reader.close()

        bar = None
        if progress:  # tqdm makes a process-wide lock even when disabled: only when shown
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths) if isinstance(paths, Sized) else None, unit="img", dynamic_ncols=True)
        try:
            yield from self._results(stream.run(self, items, budget.release), on_result, bar)
        finally:
            self.stats["store_rows_repaired"] += self.store.repaired - repaired
            self.budget_peak = budget.peak
            if bar is not None:
                bar.close()

    def cached_result(self, path: str) -> ImageResult | None:
        """This recipe's stored result for the file at ``path``, without decoding it."""
        try:
            digest = content_hash(read_file(path))  # a FIFO or device is refused, not read
        except ImageError:
            return None
        return self.stored_result(path, digest)

    def stored_result(self, path: str, digest: str) -> ImageResult | None:
        """This recipe's stored result for the content hash ``digest`` (read from ``path``)."""
        with self.store_lock:
            cached = self.store.get_result(self.key, digest)
        return None if cached is None else from_store(path, digest, cached)

    @cached_property
    def least_decode(self) -> LeastSize | None:
        """How far a JPEG may decode reduced (``regions.prescale``); None: always in full.

        With prescale the scorers load first: their input sizes come from their processors.
        """
        if self.views.prescale:
            for label in self.labels:
                self.load_scorer(label)
        return self.views.least_decode(self.segmenter if self.segments else None, [s for _, s, _ in self.scorers])

    def read(self, path: str, data: bytes | None = None) -> LoadedImage:
        """An input decoded as this recipe reads it: the one decode every stage and executor uses
        (``data``: its bytes, when the caller has read them already)."""
        return read_image(path, self.recipe.runtime.max_pixels, self.least_decode, data)

    def mask_key(self, loaded: LoadedImage) -> str:
        """What the segmenter's masks of ``loaded`` are stored under (a reduced decode gives other masks)."""
        return self.segmenter.cache_key() + loaded.decode_tag

    def segment(self, loaded: LoadedImage) -> list[dict[str, Any]]:
        """The segmenter's raw masks as RLE, from the store or the model (then stored)."""
        return segment.masks(self, loaded)

    # -------------------------------------------------------------- internals
    def _results(
        self,
        results: Iterator[ImageResult],
        on_result: Callable[[ImageResult], None] | None = None,
        bar: Any = None,
    ) -> Iterator[ImageResult]:
        """Results in order, each told to the ``iqa_image_scored`` hook, ``on_result`` and the bar."""
        hook = manager().hook
        recipe = self.recipe.model_dump(mode="json")
        for result in results:
            hook.iqa_image_scored(result=result, recipe=recipe)
            self.stats["images"] += 1
            self.stats["failed"] += result.error is not None
            if on_result is not None:
                on_result(result)
            if bar is not None:
                bar.update(1)
            yield result


load_recipe = Pipeline.from_recipe
