"""Step 4, finish, on the driver (which owns the store): rows in, results out.

An image's row says how many view rows it waits for; once they are all in, the
image is finished by the pipeline's own ``finish.from_levels`` (decode, aggregate,
ensemble, result stored). Masks and level probabilities are stored as they arrive,
so a killed run resumes from them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ...api import ImageResult, LevelProbs
from ...pipeline import finish
from ...store import ViewKey
from .wire import levels_from, region_from

if TYPE_CHECKING:
    from ...pipeline import Pipeline


class Finisher:
    """Collects each image's row and its view rows, in whatever order Ray delivers them."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.images: dict[str, dict[str, Any]] = {}
        self.views: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)

    def add(self, kind: str, path: str, info: dict[str, Any]) -> ImageResult | None:
        """Take one row; the image's result once its last row is in."""
        store = self.pipeline.store
        if kind == "view":
            if "levels" in info:
                store.put_levels([tuple(info["key"])], levels_from(info["levels"]))
            self.views[path].append(info)
        else:
            if info.get("masks") is not None:
                store.put_masks(info["hash"], self.pipeline.segmenter.cache_key(), info["masks"])
            self.images[path] = info
        image = self.images.get(path)
        if image is None or len(self.views[path]) < image.get("views", 0):
            return None
        del self.images[path]
        return self._result(path, image, self.views.pop(path, []))

    def _result(self, path: str, image: dict[str, Any], views: list[dict[str, Any]]) -> ImageResult:
        if image.get("error") is not None:
            return ImageResult(path, content_hash=image["hash"], error=image["error"])
        keys: dict[str, list[ViewKey]] = {label: [tuple(k) for k in ks] for label, ks in image["keys"].items()}
        levels: dict[str, dict[ViewKey, LevelProbs]] = {label: {} for label in keys}
        failed: dict[str, dict[ViewKey, str]] = {label: {} for label in keys}
        for view in views:
            key = tuple(view["key"])
            if "levels" in view:
                levels[view["label"]][key] = levels_from(view["levels"])
            else:
                failed[view["label"]][key] = view["error"]
        for label, found in levels.items():  # the rest were in the store when the run began
            found.update(self.pipeline.store.get_levels(set(keys[label]) - found.keys() - failed[label].keys()))
        regions = [region_from(r) for r in image["regions"]]
        size = tuple(image["size"])
        return finish.from_levels(self.pipeline, path, image["hash"], size, regions, keys, levels, failed)
