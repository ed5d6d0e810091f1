"""Step 1, read and segment (an actor pool holding the segmenter, a share of a GPU each).

Each image is read and its masks come from the seeded store rows or the segmenter, once.
Out: per image its content hash and masks, or its error row's message.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import IQAError
from ...images import read_image
from ...pipeline.items import describe
from .wire import Batch, Step


class SegmentStep(Step):
    """Read each image and run the segmenter once per image (unless its masks are seeded)."""

    def run(self, batch: Batch) -> Batch:
        pipeline = self.pipeline
        paths, seeds = [str(p) for p in batch["path"]], [str(s) for s in batch["seed"]]
        out = []
        for path, seed in zip(paths, seeds):
            if seed:
                pipeline.store.import_rows(json.loads(seed))
            out.append(json.dumps(self._masks(path)))
        stats = json.dumps(dict(pipeline.stats))
        return {"path": paths, "seed": seeds, "info": out, "stats": [stats] + [""] * (len(paths) - 1)}

    def _masks(self, path: str) -> dict[str, Any]:
        try:
            loaded = read_image(path, self.pipeline.recipe.runtime.max_pixels)
        except IQAError as exc:  # unreadable: its error row
            return {"error": str(exc)}
        try:
            return {"hash": loaded.content_hash, "masks": self.pipeline.segment(loaded)}
        except IQAError:  # e.g. the segmenter's weights: the run stops with this message
            raise
        except Exception as exc:  # one image's failure
            return {"hash": loaded.content_hash, "error": describe("segmentation", exc, path)}

    def passed(self, batch: Batch) -> Batch:
        n = len(batch["path"])
        return {"path": list(map(str, batch["path"])), "seed": [""] * n, "info": ["{}"] * n, "stats": [""] * n}
