"""Step 4, finish, on the driver (which owns the store): a scored group in, its results out.

Masks and level probabilities are stored first (a killed run resumes from them); then each
image is finished by the pipeline's own ``finish.from_levels`` (decode, aggregate, ensemble,
result stored), with the views it had in the store and those scored for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...api import ImageResult, LevelProbs
from ...pipeline import finish
from ...store import ViewKey
from .wire import Group, levels_from, region_from

if TYPE_CHECKING:
    from ...pipeline import Pipeline


def results(pipeline: Pipeline, group: Group) -> Iterator[ImageResult]:
    """Store what the steps made of ``group``, then its images' results, in input order."""
    store = pipeline.store
    scored: dict[str, list[dict[str, Any]]] = {}
    for image in group.images:
        if image.get("masks") is not None:
            store.put_masks(image["hash"], image["mask_key"], image["masks"])
    for view in group.views:
        if "levels" in view:
            store.put_levels([tuple(view["key"])], levels_from(view["levels"]))
        scored.setdefault(view["path"], []).append(view)
    for image in group.images:
        yield _result(pipeline, image, scored.get(image["path"], []))


def _result(pipeline: Pipeline, image: dict[str, Any], views: list[dict[str, Any]]) -> ImageResult:
    path = image["path"]
    if image.get("error") is not None:
        return ImageResult(path, content_hash=image.get("hash"), error=image["error"])
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
        found.update(pipeline.store.get_levels(set(keys[label]) - found.keys() - failed[label].keys()))
    regions = [region_from(r) for r in image["regions"]]
    size = (image["size"][0], image["size"][1])
    return finish.from_levels(pipeline, path, image["hash"], size, regions, keys, levels, failed)
