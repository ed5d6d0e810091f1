"""The ``whole`` segmenter: no object masks, so only the global view is scored and ``n_regions``
(which counts local regions, as the paper counts masks) is 0."""

from __future__ import annotations

import numpy as np

from iqa_core.api import Segmenter


class WholeImage(Segmenter):
    """No segmentation: only the whole image is scored, no local region (n_regions 0; Table 3 rows 1 and 6)."""

    local_regions = False

    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        return []
