"""Step 1, read, look up and segment (an actor pool holding the segmenter, a share of a GPU each).

A row comes in as a chunk of ``runtime.chunk_images`` paths, nothing read. Each file is
read once here and hashed where its bytes are; one look-up for the chunk (the ``keeper``)
tells which images have this recipe's result stored (they go on as that result) and hands
over the stored rows of the others (masks, view scores: not recomputed). The chunk leaves
as the local run's batching groups (``segment.closes_group``), each image with its content
hash and masks, its stored result, or its error row's message.
"""

from __future__ import annotations

from typing import Any

from ...errors import ImageError, IQAError
from ...images import content_hash, decoded_bytes, read_file
from ...pipeline import Pipeline
from ...pipeline.budget import ByteBudget
from ...pipeline.items import describe
from ...pipeline.segment import closes_group
from .wire import Group, Step


class SegmentStep(Step):
    """Read and hash each image of a chunk, look them up, run the segmenter once per image left."""

    def __init__(self, factory: type[Pipeline], recipe: dict[str, Any], keeper: Any) -> None:
        super().__init__(factory, recipe)
        self.keeper = keeper
        runtime = self.pipeline.recipe.runtime
        self.limit = ByteBudget(int(runtime.max_inflight_mb * 2**20)).limit // 2

    def run(self, group: Group) -> list[Group]:
        import ray

        pipeline, size = self.pipeline, self.pipeline.recipe.runtime.chunk_images
        read, kept = [], 0
        for image in group.images:  # bytes held past half the budget are read again to decode
            entry, data, need = self._read(image["path"])
            kept += len(data or b"")
            read.append((entry, data if kept <= self.limit else None, need))
        digests = [image["hash"] for image, _, _ in read if "hash" in image]
        found = ray.get(self.keeper.lookup.remote(pipeline.key, digests)) if digests else {}
        groups: list[Group] = []
        count = held = 0
        for index, (image, data, need) in enumerate(read):
            stored = found.get(image.get("hash", ""), {})
            need = 0 if "result" in stored else need  # a stored result holds no pixels (as in the local run)
            if not groups or closes_group(index, count, held, need, size, self.limit):
                groups.append(Group([]))
                count = held = 0
            count += 1
            held += need
            groups[-1].images.append(image)
            if "result" in stored:
                image["cached"] = stored["result"]
            elif "hash" in image:
                image["seed"] = stored["seed"]
                pipeline.store.import_rows(stored["seed"])
                image.update(self._masks(image, data))
        return groups

    def _read(self, path: str) -> tuple[dict[str, Any], bytes | None, int]:
        """An image of the chunk, its bytes and the budget bytes it needs (from its header, as the
        local run counts them); an image that cannot be read is its error row already."""
        try:
            data = read_file(path)
        except ImageError as exc:
            return {"path": path, "error": str(exc)}, None, 0
        need = decoded_bytes(data, self.pipeline.recipe.runtime.max_pixels)
        return {"path": path, "hash": content_hash(data)}, data, need

    def _masks(self, image: dict[str, Any], data: bytes | None) -> dict[str, Any]:
        """Decode (``data``, or the file read again) and segment, unless the recipe has no segmenter."""
        pipeline, path = self.pipeline, image["path"]
        if not pipeline.segments:
            return {}
        try:
            loaded = pipeline.read(path, data)
        except IQAError as exc:  # not an image: its error row, no hash (as in the local run)
            return {"hash": None, "error": str(exc)}
        if loaded.content_hash != image["hash"]:
            return {"error": f"{path}: the file changed while it was being scored"}
        try:
            return {"mask_key": pipeline.mask_key(loaded), "masks": pipeline.segment(loaded)}
        except IQAError:  # e.g. the segmenter's weights: the run stops with this message
            raise
        except Exception as exc:  # one image's failure
            return {"error": describe("segmentation", exc, path)}
