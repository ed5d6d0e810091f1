"""The last part of step 3, finish, on the scoring worker: a scored group in, results and new store rows out.

Each image is finished by the pipeline's own ``finish.from_levels`` (decode, aggregate,
ensemble, result stored) with the views seeded from the store and those scored for it,
in a store that holds only this group's rows. What the group adds to the run's store
(masks, level probabilities, results: every row the seeds did not already have) travels
back with the results, so the driver writes a group's rows as it takes its results, and
holds no more than one group of either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...api import ImageResult, LevelProbs
from ...pipeline import finish
from ...pipeline.items import from_store
from ...store import ViewKey
from .wire import Group, levels_from, region_from

if TYPE_CHECKING:
    from ...pipeline import Pipeline


def finish_group(pipeline: Pipeline, group: Group) -> None:
    """Replace what ``group`` carries with its images' results (input order) and its new store rows."""
    store, seeded = pipeline.store, set()
    for image in group.images:
        for table, rows in image.get("seed", {}).items():
            seeded.update((table, tuple(row)) for row in rows)
        store.import_rows(image.get("seed", {}))
        if image.get("masks") is not None:
            store.put_masks(image["hash"], image["mask_key"], image["masks"])
    scored: dict[str, list[dict[str, Any]]] = {}
    for view in group.views:
        if "levels" in view:
            store.put_levels([tuple(view["key"])], levels_from(view["levels"]))
        scored.setdefault(view["path"], []).append(view)
    group.results = [_result(pipeline, image, scored.get(image["path"], [])).to_dict() for image in group.images]
    made = store.export_rows([image["hash"] for image in group.images if image.get("hash")])
    group.rows = {table: [r for r in rows if (table, r) not in seeded] for table, rows in made.items()}
    group.images, group.views, group.pixels = [], [], b""


def _result(pipeline: Pipeline, image: dict[str, Any], views: list[dict[str, Any]]) -> ImageResult:
    path = image["path"]
    if "cached" in image:
        pipeline.stats["results_cached"] += 1
        return from_store(path, image["hash"], image["cached"])
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
