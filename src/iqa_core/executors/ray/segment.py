"""Step 1, read and segment (an actor pool holding the segmenter, a share of a GPU each).

Each image is read and its masks come from the seeded store rows or the segmenter, once.
Each image of the group gains its content hash and masks, or its error row's message.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import IQAError
from ...pipeline.items import describe
from .wire import Group, Step


class SegmentStep(Step):
    """Read each image and run the segmenter once per image (unless its masks are seeded)."""

    def run(self, group: Group) -> None:
        for image in group.images:
            if image["seed"]:
                self.pipeline.store.import_rows(json.loads(image["seed"]))
            image.update(self._masks(image["path"]))

    def _masks(self, path: str) -> dict[str, Any]:
        try:
            loaded = self.pipeline.read(path)
        except IQAError as exc:  # unreadable: its error row
            return {"error": str(exc)}
        try:
            masks = self.pipeline.segment(loaded)
            return {"hash": loaded.content_hash, "mask_key": self.pipeline.mask_key(loaded), "masks": masks}
        except IQAError:  # e.g. the segmenter's weights: the run stops with this message
            raise
        except Exception as exc:  # one image's failure
            return {"hash": loaded.content_hash, "error": describe("segmentation", exc, path)}
