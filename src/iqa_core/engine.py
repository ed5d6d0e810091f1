"""The pipeline: read -> segment -> regions -> views -> batched scoring -> aggregation.

Images are processed in chunks; within a chunk the views of all images are
gathered per scorer and scored in batches of the scorer's ``batch_size``.
Every model output goes to the store first, so nothing is computed twice and a
killed run resumes. A failure confined to one image becomes that image's error
row; failures of the setup (recipe, weights) stop the run with a clear message.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import following
from .api import (
    ImageResult,
    LevelProbs,
    Region,
    RegionAggregator,
    RegionScore,
    Scorer,
    ScorerAggregator,
    Segmenter,
    Standard,
    View,
    region_dict,
)
from .decode import decode
from .errors import ImageError, IQAError
from .images import LoadedImage, content_hash, expand_inputs, read_file, read_image, to_rgb
from .plugins import manager
from .recipe import Resolved, resolve
from .regions import build_regions, crop_view, decode_rle, encode_rle
from .store import Store, ViewKey


def _nothing() -> None:
    """A ``settle`` with nothing to wait for."""


@dataclass
class _Work:
    """One image in flight: its pixels and the regions it will be scored on."""

    index: int
    loaded: LoadedImage
    regions: list[Region]
    error: str | None = None


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
        self._loaded: set[str] = set()  # "segmenter" and scorer labels already loaded
        self.stats: Counter[str] = Counter()
        views = self.recipe.regions.views
        self.local_mode = next((v for v in views if v in ("bbox", "mask")), None)
        self.score_whole = "whole" in views

    @classmethod
    def from_recipe(cls, source: str | Path | Mapping[str, Any], store: Store | None = None) -> Pipeline:
        """A recipe file or dict -> a pipeline (validated; weights load on first use)."""
        return cls(resolve(source), store)

    # ----------------------------------------------------------------- setup
    @property
    def store(self) -> Store:
        """The recipe's store (``runtime.store``), opened on first use, unless one was given."""
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

    def load(self) -> None:
        """Load every model now (segmenter only if the recipe segments); otherwise on first need."""
        if self.segments:
            self._load_segmenter()
        for label, _, _ in self.scorers:
            self._load_scorer(label)

    def _load_segmenter(self) -> None:
        if "segmenter" not in self._loaded:
            self.segmenter.load()
            self._loaded.add("segmenter")

    def _load_scorer(self, label: str) -> None:
        if label not in self._loaded:
            _, scorer, standard = next(s for s in self.scorers if s[0] == label)
            scorer.load(standard)
            self._loaded.add(label)

    # ---------------------------------------------------------------- public
    def score(self, image: str | Path | Image.Image) -> ImageResult:
        """Score one image (a path or a PIL image)."""
        if isinstance(image, Image.Image):
            rgb = to_rgb(image)
            digest = hashlib.sha256(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()[:32]
            loaded = LoadedImage("<image>", digest, rgb)
            return self._run_chunk([(loaded.path, loaded)])[0]
        return self.score_many([image])[0]

    def score_many(
        self,
        inputs: Iterable[str | Path],
        progress: bool = False,
        on_result: Callable[[ImageResult], None] | None = None,
    ) -> list[ImageResult]:
        """Score files, folders, globs or list files; results in input order, errors as rows."""
        paths = expand_inputs(inputs)
        results: list[ImageResult] = []
        repaired = self.store.repaired  # damaged store rows found while scoring these are recomputed
        bar = None
        if progress:  # tqdm makes a process-wide lock even when disabled: only when shown
            from tqdm.auto import tqdm

            bar = tqdm(total=len(paths), unit="img", dynamic_ncols=True)
        try:
            for chunk in self._chunks(paths):
                for result in self._run_chunk(chunk):
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
                    if bar is not None:
                        bar.update(1)
        finally:
            self.stats["store_rows_repaired"] += self.store.repaired - repaired
            if bar is not None:
                bar.close()
        return results

    def run(self, inputs: Iterable[str | Path], progress: bool = False) -> list[ImageResult]:
        """Like :meth:`score_many`, through the recipe's executor (``runtime.devices``, Ray)."""
        from .runner import run_pipeline

        return run_pipeline(self, inputs, progress)

    def cached_result(self, path: str) -> ImageResult | None:
        """This recipe's stored result for the file at ``path``, without decoding it."""
        try:
            digest = content_hash(read_file(path))  # a FIFO or device is refused, not read
        except ImageError:
            return None
        cached = self.store.get_result(self.key, digest)
        return None if cached is None else _from_store(path, digest, cached)

    # -------------------------------------------------------------- internals
    def _chunks(self, paths: Sequence[str]) -> Iterator[list[tuple[str, LoadedImage | str]]]:
        """Read and decode ahead in worker threads while the models work on the current chunk."""
        rt = self.recipe.runtime
        size = rt.chunk_images

        def read(path: str) -> LoadedImage | str:
            try:
                return read_image(path, rt.max_pixels)
            except IQAError as exc:
                return str(exc)

        with ThreadPoolExecutor(max(rt.workers, 1)) as pool:
            ahead: deque[tuple[str, Future[LoadedImage | str]]] = deque()
            it = iter(paths)
            chunk: list[tuple[str, LoadedImage | str]] = []
            while True:
                while len(ahead) < 2 * size:
                    path = next(it, None)
                    if path is None:
                        break
                    ahead.append((path, pool.submit(read, path)))
                if not ahead:
                    break
                path, future = ahead.popleft()
                chunk.append((path, future.result()))
                if len(chunk) == size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def _run_chunk(self, chunk: Sequence[tuple[str, LoadedImage | str]]) -> list[ImageResult]:
        results: dict[int, ImageResult] = {}
        work: list[_Work] = []
        for index, (path, item) in enumerate(chunk):
            if isinstance(item, str):
                results[index] = ImageResult(path, error=item)
                continue
            cached = self.store.get_result(self.key, item.content_hash)
            if cached is not None:
                self.stats["results_cached"] += 1
                results[index] = _from_store(path, item.content_hash, cached)
                continue
            try:
                work.append(_Work(index, item, self._regions(item)))
            except IQAError:
                raise
            except Exception as exc:  # one image's segmentation failure must not stop the run
                results[index] = ImageResult(
                    path, content_hash=item.content_hash, error=_describe("segmentation", exc, path)
                )
        levels = {label: self._score_views(label, scorer, std, work) for label, scorer, std in self.scorers}
        for w in work:
            results[w.index] = self._finish(w, levels)
        ordered = [results[i] for i in range(len(chunk))]
        hook = manager().hook
        recipe = self.recipe.model_dump(mode="json")
        for result in ordered:
            hook.iqa_image_scored(result=result, recipe=recipe)
        self.stats["images"] += len(ordered)
        self.stats["failed"] += sum(r.error is not None for r in ordered)
        return ordered

    def segment(self, item: LoadedImage) -> list[dict[str, Any]]:
        """The segmenter's raw masks as RLE, from the store or the model (then stored)."""
        seg_key = self.segmenter.cache_key()
        rles = self.store.get_masks(item.content_hash, seg_key)
        if rles is None:
            self._load_segmenter()
            masks = self.segmenter.segment(np.asarray(item.image))
            self.stats["segmenter_calls"] += 1
            rles = [encode_rle(np.asarray(m, dtype=bool)) for m in masks]
            self.store.put_masks(item.content_hash, seg_key, rles)
        return rles

    def _regions(self, item: LoadedImage) -> list[Region]:
        spec = self.recipe.regions
        if not self.segments:  # no local regions: the whole image stands in, as in aggregation
            return [Region("global", (0, 0, *item.size), 1.0)]
        masks = [decode_rle(r) for r in self.segment(item)]
        regions = build_regions(masks, item.size, spec.min_area, spec.complement)
        local = [r for r in regions if r.kind != "global"]
        return regions if self.score_whole or not local else local

    def _view_key(self, w: _Work, region: Region, scorer: Scorer, std: Standard) -> ViewKey:
        mode = self.local_mode if region.kind != "global" else "whole"
        view = region.view_key(mode or "whole")
        x0, y0, x1, y1 = region.bbox
        min_side = self.recipe.regions.min_view_side
        if view != "whole" and min(x1 - x0, y1 - y0) < min_side:
            view += f"@{min_side}"  # crop_view upscales it: other pixels than without min_side
        return (w.loaded.content_hash, view, scorer.cache_key(), std.prompt_key())

    def _score_views(
        self, label: str, scorer: Scorer, std: Standard, work: Sequence[_Work]
    ) -> dict[ViewKey, LevelProbs]:
        """Level probabilities for every view of every image in ``work``, from store or model."""
        wanted: dict[ViewKey, tuple[_Work, Region]] = {}
        for w in work:
            for region in w.regions:
                wanted.setdefault(self._view_key(w, region, scorer, std), (w, region))
        found = self.store.get_levels(wanted)
        pending = [k for k in wanted if k not in found]
        self.stats["views_cached"] += len(found)
        for levels in found.values():
            following.count(self.stats, label, levels)
        if pending:
            self._load_scorer(label)
        # similar sizes batch together (less padding for dynamic-resolution models)
        pending.sort(key=lambda k: _area(wanted[k][1].bbox))
        step = max(1, scorer.batch_size)
        batches = [pending[i : i + step] for i in range(0, len(pending), step)]
        failed: dict[ViewKey, str] = {}

        def views_of(keys: list[ViewKey]) -> tuple[list[ViewKey], list[View]]:
            """The views that can be cut; a view that cannot fails its image."""
            kept, views = [], []
            for k in keys:
                try:
                    views.append(self._view(*wanted[k], k))
                    kept.append(k)
                except Exception as exc:
                    failed[k] = _describe("cutting a view", exc)
            return kept, views

        def prepare(keys: list[ViewKey]) -> tuple[list[ViewKey], list[View], Any]:
            keys, views = views_of(keys)
            try:
                return keys, views, scorer.prepare(views, std)
            except Exception:  # retried in the main thread, view by view, to find the bad one
                return keys, views, None

        with ThreadPoolExecutor(1) as pool:  # prepare batch i + 1 while batch i runs
            ahead = pool.submit(prepare, batches[0]) if batches else None
            for i in range(len(batches)):
                keys, views, prepared = ahead.result()  # type: ignore[union-attr]
                ahead = pool.submit(prepare, batches[i + 1]) if i + 1 < len(batches) else None
                if not keys:
                    continue
                settle = ahead.result if ahead is not None else _nothing
                calls = self._call_scorer(label, scorer, std, keys, views, failed, prepared, settle)
                for sub_keys, levels in calls:
                    self.store.put_levels(sub_keys, levels)
                    for j, key in enumerate(sub_keys):
                        found[key] = levels.row(j)
        if failed:  # every image that shares a failed view fails (identical files in one chunk)
            for w in work:
                errors = [failed.get(self._view_key(w, r, scorer, std)) for r in w.regions]
                w.error = w.error or next((e for e in errors if e is not None), None)
        return found

    def _view(self, w: _Work, region: Region, key: ViewKey) -> View:
        mode = self.local_mode if region.kind != "global" else "whole"
        image = crop_view(w.loaded.image, region, mode or "whole", self.recipe.regions.min_view_side)
        return View(image=image, key=key[1], source=w.loaded.path)

    def _call_scorer(
        self,
        label: str,
        scorer: Scorer,
        std: Standard,
        keys: list[ViewKey],
        views: list[View],
        failed: dict[ViewKey, str],
        prepared: Any = None,
        settle: Callable[[], object] = _nothing,
    ) -> Iterator[tuple[list[ViewKey], LevelProbs]]:
        """One batched call; if it fails, view by view, so one bad view fails only its image.

        ``settle`` waits for the background ``prepare`` of the next batch, so the scorer's
        processor is never used by two threads at once.
        """
        try:
            if prepared is None:
                settle()
                prepared = scorer.prepare(views, std)
            levels = scorer.forward(prepared, std)
            self.stats["scorer_calls"] += 1
            self.stats["views_scored"] += len(views)
            _check_levels(label, levels, len(views), std)
            following.count(self.stats, label, levels)
            yield keys, levels
            return
        except IQAError:
            raise
        except Exception as exc:
            if len(views) == 1:
                failed[keys[0]] = _describe(f"scorer {label!r}", exc)
                return
        for key, view in zip(keys, views):
            yield from self._call_scorer(label, scorer, std, [key], [view], failed, settle=settle)

    def _finish(self, w: _Work, levels: dict[str, dict[ViewKey, LevelProbs]]) -> ImageResult:
        path, digest = w.loaded.path, w.loaded.content_hash
        if w.error is not None:
            return ImageResult(path, content_hash=digest, size=w.loaded.size, error=f"{path}: {w.error}")
        rows = [RegionScore(i, region) for i, region in enumerate(w.regions)]
        per_scorer: dict[str, float] = {}
        ranges = []
        try:
            for label, scorer, std in self.scorers:
                lp = [levels[label][self._view_key(w, r, scorer, std)] for r in w.regions]
                stacked = LevelProbs(np.vstack([x.probs for x in lp]), lp[0].values)
                scores = decode(stacked, self.recipe.decode)
                for row, s in zip(rows, scores):
                    row.scores[label] = float(s)
                per_scorer[label] = self.aggregate.combine(scores, w.regions)
                ranges.append((min(stacked.values), max(stacked.values)))
            final = self.ensemble.combine(np.array(list(per_scorer.values())), ranges)
        except ValueError as exc:
            return ImageResult(path, content_hash=digest, size=w.loaded.size, error=_describe("aggregation", exc, path))
        self.store.put_result(self.key, digest, final, per_scorer, [region_dict(r) for r in rows], w.loaded.size)
        return ImageResult(path, final, per_scorer, rows, digest, w.loaded.size)


def _area(bbox: tuple[int, int, int, int]) -> int:
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])


def _check_levels(label: str, levels: LevelProbs, n: int, std: Standard) -> None:
    if len(levels) != n:
        raise ValueError(f"scorer {label!r} returned {len(levels)} rows for {n} views")
    if not np.all(np.isfinite(levels.probs)) or np.any(levels.probs < 0):
        raise ValueError(f"scorer {label!r} returned negative or non-finite level probabilities")
    if not np.allclose(levels.probs.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"scorer {label!r} returned level probabilities whose rows do not sum to 1")


def _describe(stage: str, exc: Exception, path: str | None = None) -> str:
    """An error row's message; like an ImageError's it names the file, so summaries can list it."""
    where = f"{path}: " if path else ""
    return f"{where}{stage} failed: {type(exc).__name__}: {exc}"


def _from_store(path: str, digest: str, cached: dict[str, Any]) -> ImageResult:
    return ImageResult.from_dict({**cached, "path": path, "content_hash": digest})


load_recipe = Pipeline.from_recipe
