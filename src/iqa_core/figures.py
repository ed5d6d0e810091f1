"""The paper's figures from results: score scatter (Fig. 4), scored regions (Fig. 6),
regions-per-image histogram (supplementary Fig. 1).

Each function writes ``out`` as both PNG and SVG (whatever suffix ``out``
has is replaced) and returns the two paths. matplotlib is imported inside the
functions and used through ``Figure`` objects only (no pyplot, no global
backend state), so nothing here needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .api import ImageResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _save(fig: Figure, out: str | Path) -> list[Path]:
    """Write ``out`` as PNG and SVG; SVG text stays text (editable, searchable)."""
    import matplotlib

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def scatter_with_marginals(
    pred: ArrayLike,
    mos: ArrayLike,
    out: str | Path,
    *,
    title: str = "",
    xlabel: str = "MOS",
    ylabel: str = "Predicted score",
) -> list[Path]:
    """Figure 4: (MOS, predicted) points with each axis's histogram in the margins.

    Non-finite pairs are left out; SRCC/PLCC are printed in the plot.
    """
    from matplotlib.figure import Figure

    from .metrics import correlations, finite_pairs

    p, m, _ = finite_pairs(pred, mos)
    stats = correlations(p, m)
    fig = Figure(figsize=(5.5, 5.5))
    grid = fig.add_gridspec(
        2, 2, width_ratios=(4, 1), height_ratios=(1, 4), hspace=0.05, wspace=0.05
    )
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    ax.scatter(m, p, s=6, alpha=0.5, linewidths=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.text(
        0.03,
        0.97,
        f"SRCC {stats['srcc']:.3f}\nPLCC {stats['plcc']:.3f}\nn = {stats['n']}",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
    )
    top.hist(m, bins=40)
    right.hist(p, bins=40, orientation="horizontal")
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    if title:
        top.set_title(title)
    return _save(fig, out)


def _decode_mask(rle: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask at image ``size`` = (width, height) from a COCO RLE at working size."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    if isinstance(rle["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    small = mask_utils.decode(rle).astype(bool)
    resized = Image.fromarray(small).resize(size, Image.Resampling.NEAREST)
    return np.asarray(resized, dtype=bool)


def regions_figure(image: Any, result: ImageResult, out: str | Path) -> list[Path]:
    """Figure 6: the image with its final score, and beside it each local region outlined.

    ``image`` is a path or a PIL image. Each region is drawn as a translucent
    fill plus its bbox, labelled with its score (mean over scorers) at the
    bbox's upper left and its area fraction at the lower right; the region
    count is the segmented panel's title.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from PIL import Image

    if isinstance(image, Image.Image):
        img = image.convert("RGB")
    else:
        with Image.open(image) as f:
            img = f.convert("RGB")
    w, h = img.size
    local = [r for r in result.regions if r.region.kind != "global"]
    fig = Figure(figsize=(10, 5 * h / w + 0.4))
    left, right = fig.subplots(1, 2)
    for ax in (left, right):
        ax.imshow(img)
        ax.set_axis_off()
    label = dict(fontsize=8, color="white", bbox=dict(facecolor="black", alpha=0.6, pad=1.5, lw=0))
    score = "—" if result.score is None else f"{result.score:.2f}"
    left.text(4, 4, score, va="top", ha="left", **{**label, "fontsize": 11})
    # a title, not a corner label: a full-image bbox puts its score label at (0, 0)
    right.set_title(f"{len(local)} regions", loc="left", fontsize=10)

    overlay = np.zeros((h, w, 4))
    colors = colormaps["tab10"]
    for i, rs in enumerate(local):
        color = colors(i % 10)
        if rs.region.rle is not None:
            overlay[_decode_mask(rs.region.rle, (w, h))] = (*color[:3], 0.35)
        x0, y0, x1, y1 = rs.region.bbox
        right.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=color, lw=1.5))
        s = f"{np.mean(list(rs.scores.values())):.2f}" if rs.scores else "—"
        right.text(x0 + 2, y0 + 2, s, va="top", ha="left", **label)
        right.text(x1 - 2, y1 - 2, f"{rs.region.area:.0%}", va="bottom", ha="right", **label)
    right.imshow(overlay)
    return _save(fig, out)


def regions_histogram(counts: Sequence[int] | ArrayLike, out: str | Path) -> list[Path]:
    """Supplementary Figure 1: how many local regions the segmenter kept per image."""
    from matplotlib.figure import Figure

    c = np.asarray(counts, dtype=int).ravel()
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    hi = int(c.max()) if c.size else 0
    ax.hist(c, bins=np.arange(-0.5, hi + 1.5), rwidth=0.85)
    ax.set_xlabel("regions per image")
    ax.set_ylabel("images")
    if c.size:
        ax.axvline(c.mean(), color="black", ls="--", lw=1)
        ax.set_title(f"mean {c.mean():.2f} regions over {c.size} images", fontsize=9)
    return _save(fig, out)
