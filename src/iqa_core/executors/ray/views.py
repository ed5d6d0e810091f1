"""Step 2, regions and views (Ray tasks on the CPU: no model).

Per image: Algorithm 1 over its masks (the pipeline's own ``segment.regions``), each
scorer's view keys, the level probabilities the seeded store rows already have, and
the pixels of every other view, cut at full resolution. Out: an ``image`` row (regions,
keys, masks, or the error) and a ``view`` row per view to score (or that could not be cut).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ... import following
from ...api import Region
from ...errors import IQAError
from ...images import LoadedImage, read_image
from ...pipeline import Pipeline, segment
from ...pipeline.items import describe
from ...store import ViewKey
from .wire import Batch, Step, columns, region_to, stats_of


def cut_views(batch: Batch, factory: type[Pipeline], recipe: str) -> Batch:
    """The step as Ray runs it: a task, with one pipeline per worker process (no weights load)."""
    return _step(factory, recipe)(batch)


@lru_cache(maxsize=1)
def _step(factory: type[Pipeline], recipe: str) -> ViewsStep:
    return ViewsStep(factory, json.loads(recipe))


class ViewsStep(Step):
    def run(self, batch: Batch) -> Batch:
        stats = stats_of(batch)
        seeds = batch["seed"]
        segmented = batch.get("info", ["{}"] * len(seeds))  # none: the recipe does not segment
        out: list[dict[str, Any]] = []
        for path, seed, masks in zip(batch["path"], seeds, segmented):
            if seed:
                self.pipeline.store.import_rows(json.loads(str(seed)))
            out += self._image(str(path), json.loads(str(masks)))
        stats.update(self.pipeline.stats)
        return columns(out, stats)

    def passed(self, batch: Batch) -> Batch:
        return columns([{"kind": "image", "path": str(p), "info": "{}"} for p in batch["path"]], stats_of(batch))

    def _image(self, path: str, segmented: dict[str, Any]) -> list[dict[str, Any]]:
        """An image's row, then its view rows."""
        pipeline = self.pipeline
        info: dict[str, Any] = {"hash": segmented.get("hash"), "error": segmented.get("error")}
        image = {"kind": "image", "path": path}
        if info["error"] is not None:
            return [{**image, "info": json.dumps(info)}]
        try:  # read again: pixels do not travel between steps, only the views cut from them
            loaded = read_image(path, pipeline.recipe.runtime.max_pixels)
        except IQAError as exc:
            return [{**image, "info": json.dumps({"hash": None, "error": str(exc)})}]
        info["hash"] = loaded.content_hash
        if segmented and segmented["hash"] != loaded.content_hash:
            info["error"] = f"{path}: the file changed while it was being scored"
            return [{**image, "info": json.dumps(info)}]
        if segmented:
            pipeline.store.put_masks(loaded.content_hash, pipeline.segmenter.cache_key(), segmented["masks"])
            info["masks"] = segmented["masks"]
        try:
            regions = segment.regions(pipeline, loaded)  # from the masks just put: no segmenter here
        except IQAError:
            raise
        except Exception as exc:  # as the local run: one image's failure
            info["error"] = describe("segmentation", exc, path)
            return [{**image, "info": json.dumps(info)}]
        views = self._views(loaded, regions, info)
        info.update(size=list(loaded.size), regions=[region_to(r) for r in regions], views=len(views))
        return [{**image, "info": json.dumps(info)}, *views]

    def _views(self, loaded: LoadedImage, regions: list[Region], info: dict[str, Any]) -> list[dict[str, Any]]:
        """Per scorer: the view keys (into ``info``), the stored rows counted, the other views cut."""
        pipeline, out = self.pipeline, []
        info["keys"] = {}
        for label, scorer, std in pipeline.scorers:
            keys = [pipeline.views.key(loaded, region, scorer, std) for region in regions]
            info["keys"][label] = keys
            wanted: dict[ViewKey, Region] = {}
            for key, region in zip(keys, regions):
                wanted.setdefault(key, region)
            found = pipeline.store.get_levels(wanted)
            pipeline.stats["views_cached"] += len(found)
            for levels in found.values():
                following.count(pipeline.stats, label, levels)
            for key, region in wanted.items():
                if key in found:
                    continue
                view: dict[str, Any] = {"label": label, "key": key, "region": region_to(region)}
                pixels = b""
                try:
                    cut = pipeline.views.cut(loaded, region, key)
                    size = pipeline.views.size(loaded, region)
                    tokens = scorer.view_tokens(size)
                    pixels = cut.image.tobytes()
                    cost = size[0] * size[1] if tokens is None else tokens
                    view.update(cost=cost, tokens=tokens, mode=cut.image.mode, size=list(cut.image.size))
                except Exception as exc:  # a view that cannot be cut fails its image
                    view["error"] = describe("cutting a view", exc)
                out.append({"kind": "view", "path": loaded.path, "info": json.dumps(view), "pixels": pixels})
        return out
