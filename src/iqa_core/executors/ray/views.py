"""Step 2, regions and views (Ray tasks on the CPU: no model).

Per image still to score: Algorithm 1 over its masks (the pipeline's own ``segment.regions``),
each scorer's view keys, the level probabilities the seeded store rows already have, and the
pixels of every other view, cut at full resolution. Each image gains its regions and keys
(or its error); the group gains a view per view to score (or that could not be cut).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ... import following
from ...api import Region
from ...errors import IQAError
from ...images import LoadedImage
from ...pipeline import Pipeline, segment
from ...pipeline.items import describe
from ...store import ViewKey
from .wire import Batch, Group, Step, region_to


def cut_views(batch: Batch, factory: type[Pipeline], recipe: str) -> Batch:
    """The step as Ray runs it: a task, with one pipeline per worker process (no weights load)."""
    return _step(factory, recipe)(batch)


@lru_cache(maxsize=1)
def _step(factory: type[Pipeline], recipe: str) -> ViewsStep:
    return ViewsStep(factory, json.loads(recipe))


class ViewsStep(Step):
    def run(self, group: Group) -> list[Group]:
        pixels, cut = bytearray(), set()
        for image in group.images:
            if "seed" in image:  # neither a stored result nor an error row
                self.pipeline.store.import_rows(image["seed"])
            if image.get("error") is None and "cached" not in image:
                self._image(image, group.views, pixels, cut)
        group.pixels = bytes(pixels)
        return [group]

    def _image(
        self, image: dict[str, Any], views: list[dict[str, Any]], pixels: bytearray, cut: set[tuple[str, ViewKey]]
    ) -> None:
        pipeline, path = self.pipeline, image["path"]
        try:  # read again: pixels do not travel between steps, only the views cut from them
            loaded = pipeline.read(path)
        except IQAError as exc:
            image.update(hash=None, error=str(exc))
            return
        if image["hash"] != loaded.content_hash:
            image["error"] = f"{path}: the file changed while it was being scored"
            return
        if "masks" in image:
            pipeline.store.put_masks(loaded.content_hash, pipeline.mask_key(loaded), image["masks"])
        try:
            regions = segment.regions(pipeline, loaded)  # from the masks just put: no segmenter here
        except IQAError:
            raise
        except Exception as exc:  # as in the local run: this image's failure
            image["error"] = describe("segmentation", exc, path)
            return
        image.update(size=list(loaded.size), regions=[region_to(r) for r in regions], keys={})
        for label, scorer, std in pipeline.scorers:
            keys = [pipeline.views.key(loaded, region, scorer, std) for region in regions]
            image["keys"][label] = keys
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
                if (label, key) in cut:  # an identical view in this group (identical files): scored once
                    views.append({"path": path, "label": label, "key": key})
                    continue
                views.append(self._view(loaded, label, key, region, pixels))
                if "error" not in views[-1]:
                    cut.add((label, key))

    def _view(self, loaded: LoadedImage, label: str, key: ViewKey, region: Region, out: bytearray) -> dict[str, Any]:
        """One view to score: its key and where in ``out`` its pixels are; or why it could not be cut."""
        pipeline = self.pipeline
        view: dict[str, Any] = {"path": loaded.path, "label": label, "key": key, "region": region_to(region)}
        try:
            cut = pipeline.views.cut(loaded, region, key).image
            data = cut.tobytes()
        except Exception as exc:  # a view that cannot be cut fails its image
            return {**view, "error": describe("cutting a view", exc)}
        start = len(out)
        out += data
        where = {"mode": cut.mode, "size": list(cut.size), "at": [start, len(out)]}
        return {**view, **where}
