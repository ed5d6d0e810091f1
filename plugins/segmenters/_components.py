"""8-connected components of many binary masks at once, for SAM2's small-region filter.

The filter labels the components of every candidate mask twice (holes, then islands). The
sam2 package does it with a CUDA extension (``sam2._C``) that is often not built. Here all
slices are labelled in one pass where the masks are: on an accelerator with tensor operations
(no copy to the host), on the CPU with ``scipy.ndimage.label`` (a sequential union-find that
is ~50x faster there than the tensor algorithm; no copy either, it reads the tensor's memory).

The tensor algorithm is FastSV (Zhang, Azad & Hu, "FastSV: a distributed-memory connected
component algorithm with fast convergence", 2020) on the pixel grid: every pixel keeps a
parent pointer (the flat index of a pixel of its component, never smaller than its own); each
round hooks parents onto the largest grandparent among the 8 neighbours (a 3x3 max-pool) and
shortcuts, until no pointer changes; every pixel then points at the largest flat index of its
component. The rounds grow with the logarithm of a component's extent, also for spirals and
snakes where plain label propagation needs one round per pixel of the path.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

Backend = Literal["auto", "torch", "scipy"]


def component_roots(mask: torch.Tensor) -> torch.Tensor:
    """Per pixel of a boolean ``(..., H, W)`` mask, the flat index (int32, within its ``H x W``
    slice) of its 8-connected component's largest pixel; background pixels point at themselves."""
    *lead, h, w = mask.shape
    n = h * w
    if n >= 2**24:  # the max-pool runs on float32, exact for integers below 2**24
        raise ValueError(f"masks of {h}x{w} pixels are too large to label (at most 2**24 pixels)")
    fg = mask.reshape(-1, n)
    b = fg.shape[0]
    parent = torch.arange(n, dtype=torch.int32, device=mask.device).expand(b, n).contiguous()
    while True:
        grand = parent.gather(1, parent)
        masked = torch.where(fg, grand, -1).float().view(b, 1, h, w)
        best = F.max_pool2d(masked, 3, stride=1, padding=1).view(b, n).int()
        best = torch.where(fg, best, parent)  # background never hooks
        new = parent.scatter_reduce(1, parent, best, "amax")  # hook the parent
        new = torch.maximum(torch.maximum(new, best), grand)  # hook the pixel, shortcut
        if torch.equal(new, parent):
            return parent.view(*lead, h, w)
        parent = new


def component_areas(mask: torch.Tensor, backend: Backend = "auto") -> torch.Tensor:
    """Per pixel of a boolean ``(..., H, W)`` mask, the pixel count of its 8-connected component
    within its ``H x W`` slice (0 on background). ``auto``: scipy on the CPU, torch elsewhere."""
    if backend == "scipy" or (backend == "auto" and mask.device.type == "cpu"):
        return torch.from_numpy(_areas_scipy(mask.cpu().numpy())).to(mask.device)
    *lead, h, w = mask.shape
    fg = mask.reshape(-1, h * w)
    roots = component_roots(mask).reshape(fg.shape)
    counts = torch.zeros(fg.shape, dtype=torch.int32, device=mask.device).scatter_add_(1, roots, fg.int())
    return (counts.gather(1, roots) * fg).view(*lead, h, w)


def _areas_scipy(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    structure = np.zeros((3,) * mask.ndim, dtype=bool)
    structure[(1,) * (mask.ndim - 2)] = True  # connect within each 2-D slice only
    labels, _ = ndimage.label(mask, structure=structure)
    counts = np.bincount(labels.ravel()).astype(np.int32)
    counts[0] = 0
    return counts[labels]


def fill_small_regions(
    logits: torch.Tensor, threshold: float, max_area: int, backend: Backend = "auto"
) -> torch.Tensor:
    """SAM2's hole and island filter on ``(..., H, W)`` mask logits, all slices in one pass.

    Background components (``logits <= threshold``) of at most ``max_area`` pixels become
    ``threshold + 10``, foreground ones ``threshold - 10``: what ``SAM2Transforms.postprocess_masks``
    does with the ``sam2._C`` kernel, without the resize.
    """
    logits = logits.float()
    fg = logits > threshold
    areas = component_areas(torch.stack((~fg, fg)), backend)
    hole = (areas[0] > 0) & (areas[0] <= max_area)
    island = (areas[1] > 0) & (areas[1] <= max_area)
    logits = torch.where(hole, threshold + 10.0, logits)
    return torch.where(island, threshold - 10.0, logits)
