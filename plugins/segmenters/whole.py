"""The ``whole`` segmenter: no object masks, so only the whole image is scored."""

from __future__ import annotations

import numpy as np

from iqa_core.api import Segmenter


class WholeImage(Segmenter):
    """No segmentation: the whole image is the only region (Table 3 rows 1 and 6)."""

    local_regions = False

    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        return []
