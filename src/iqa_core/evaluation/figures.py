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

from ..api import ImageResult
from ..outputs import replacing

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plural(n: int, word: str) -> str:
    """``1 region``, ``3 regions``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


CORNERS = {  # text anchor (x, y, ha, va) in axes fractions
    "upper left": (0.03, 0.97, "left", "top"),
    "upper right": (0.97, 0.97, "right", "top"),
    "lower right": (0.97, 0.03, "right", "bottom"),
    "lower left": (0.03, 0.03, "left", "bottom"),
}


def emptiest_corner(x: np.ndarray, y: np.ndarray, box: tuple[float, float] = (0.34, 0.24)) -> str:
    """The corner of the axes whose ``box`` (width, height in axes fractions) holds the fewest
    points, given as axes fractions; ties go to the first of :data:`CORNERS`."""
    bw, bh = box
    inside = {
        "upper left": (x <= bw) & (y >= 1 - bh),
        "upper right": (x >= 1 - bw) & (y >= 1 - bh),
        "lower right": (x >= 1 - bw) & (y <= bh),
        "lower left": (x <= bw) & (y <= bh),
    }
    return min(CORNERS, key=lambda corner: int(inside[corner].sum()))


def _save(fig: Figure, out: str | Path, caveat: str = "") -> list[Path]:
    """Write ``out`` as PNG and SVG; SVG text stays text (editable, searchable).

    ``caveat`` (the recipe's) is drawn above everything else, so a figure cut out of a report
    still says, e.g., that its models have random weights.
    """
    import matplotlib

    if caveat:
        style = dict(fontsize=10, fontweight="bold", color="#b00000", gid="caveat",
                     bbox=dict(facecolor="#fff0f0", edgecolor="#b00000", lw=0.8, pad=3))  # fmt: skip
        # above the figure (its box clear of the axes' titles); bbox_inches="tight" keeps it in the file
        fig.text(0.5, 1.01, caveat, ha="center", va="bottom", **style)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            with replacing(path) as temp:
                fig.savefig(temp, dpi=150, bbox_inches="tight", pad_inches=0.03)
    return paths


def scatter_with_marginals(
    pred: ArrayLike,
    mos: ArrayLike,
    out: str | Path,
    *,
    title: str = "",
    xlabel: str = "MOS",
    ylabel: str = "Predicted score",
    caveat: str = "",
) -> list[Path]:
    """Figure 4: (MOS, predicted) points with each axis's histogram in the margins.

    Non-finite pairs are left out. The fitted 4-parameter logistic (the mapping behind
    ``plcc_fitted``) is drawn over the points; SRCC/PLCC sit in the corner with the fewest
    points. The histograms carry no count labels, so nothing collides with the main axes.
    """
    from matplotlib.figure import Figure

    from .metrics import correlations, finite_pairs, logistic4_fit

    p, m, _ = finite_pairs(pred, mos)
    stats = correlations(p, m)
    fig = Figure(figsize=(5.5, 5.5))
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), hspace=0.04, wspace=0.04)
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    ax.scatter(m, p, s=16 if p.size <= 2000 else 8, alpha=0.55, linewidths=0)
    fit = logistic4_fit(p, m)
    curve = np.linspace(p.min(), p.max(), 200)
    ax.plot(fit(curve), curve, color="C3", lw=1.5, gid="fit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    corner = emptiest_corner((m - x0) / (x1 - x0), (p - y0) / (y1 - y0))
    tx, ty, ha, va = CORNERS[corner]
    text = f"SRCC {stats['srcc']:.3f}\nPLCC {stats['plcc']:.3f} (fitted {stats['plcc_fitted']:.3f})\nn = {stats['n']}"
    ax.text(tx, ty, text, transform=ax.transAxes, ha=ha, va=va, fontsize=8, gid="stats",
            bbox=dict(facecolor="white", alpha=0.8, lw=0, pad=2))  # fmt: skip
    top.hist(m, bins=40)
    right.hist(p, bins=40, orientation="horizontal")
    for hist in (top, right):
        hist.tick_params(labelbottom=False, labelleft=False, bottom=hist is not top, left=hist is not right)
        hist.spines[["top", "right"]].set_visible(False)
    if title:
        top.set_title(title)
    return _save(fig, out, caveat)


def _decode_mask(rle: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask at image ``size`` = (width, height) from a COCO RLE at working size."""
    from PIL import Image

    from ..regions import decode_rle

    small = Image.fromarray(decode_rle(rle))
    return np.asarray(small.resize(size, Image.Resampling.NEAREST), dtype=bool)


def regions_figure(
    image: Any, result: ImageResult, out: str | Path, max_panels: int = 8, caveat: str = ""
) -> list[Path]:
    """Figure 6: the image with its final score, the segmentation, and one panel per region.

    ``image`` is a path or a PIL image. The overview numbers each local region
    at its mask's centroid (the count in its title); below, each region's
    bbox crop (pixels outside the mask dimmed) carries its score (mean over
    scorers) upper left and its area lower right, as in the paper. Regions
    are shown largest first, at most ``max_panels``.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from PIL import Image

    from ..images import read_image, to_rgb

    # read as the engine reads (EXIF orientation applied): boxes and masks are in those coordinates
    img = to_rgb(image) if isinstance(image, Image.Image) else read_image(image).image
    w, h = img.size
    pixels = np.asarray(img)
    local = sorted((r for r in result.regions if r.region.kind != "global"), key=lambda r: -r.region.area)
    shown = local[:max_panels]
    cols = max(len(shown), 2)
    # the overview row holds two images side by side, the panel row one crop per column
    panel = 2.0 * max((r.region.bbox[3] - r.region.bbox[1]) / max(r.region.bbox[2] - r.region.bbox[0], 1)
                      for r in shown) if shown else 0.0  # fmt: skip
    overview_height = 1.0 * cols * h / w
    fig = Figure(figsize=(2.0 * cols, overview_height + min(panel, 2.4) + 0.5), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.01, h_pad=0.01, wspace=0.02, hspace=0.02)
    ratios = (overview_height, min(panel, 2.4)) if shown else None
    grid = fig.add_gridspec(2 if shown else 1, cols, height_ratios=ratios)
    top = grid[0, :].subgridspec(1, 2)
    overview = [fig.add_subplot(top[0, 0]), fig.add_subplot(top[0, 1])]
    label = dict(fontsize=8, color="white", bbox=dict(facecolor="black", alpha=0.65, pad=1.5, lw=0))
    for ax in overview:
        ax.imshow(img)
        ax.set_axis_off()
    score = "—" if result.score is None else f"{result.score:.2f}"
    overview[0].text(
        0.02, 0.98, score, transform=overview[0].transAxes, va="top", ha="left", **{**label, "fontsize": 12}
    )
    overview[1].set_title(plural(len(local), "region"), loc="left", fontsize=10)
    colors = colormaps["tab10"]
    fill = np.zeros((h, w, 4))
    for i, rs in enumerate(local):
        if rs.region.rle is None:
            continue
        mask = _decode_mask(rs.region.rle, (w, h))
        fill[mask] = (*colors(i % 10)[:3], 0.45)
        ys, xs = np.nonzero(mask)
        if xs.size:
            overview[1].text(xs.mean(), ys.mean(), str(i + 1), ha="center", va="center", **label)
        if i < len(shown):
            x0, y0, x1, y1 = rs.region.bbox
            crop = pixels[y0:y1, x0:x1].astype(np.float64)
            crop[~mask[y0:y1, x0:x1]] *= 0.3
            ax = fig.add_subplot(grid[1, i])
            ax.imshow(crop.astype(np.uint8))
            ax.set_axis_off()
            ax.set_title(f"{i + 1}: {rs.region.kind}", fontsize=8)
            s = f"{np.mean(list(rs.scores.values())):.2f}" if rs.scores else "—"
            ax.text(0.03, 0.97, s, transform=ax.transAxes, va="top", ha="left", **label)
            ax.text(0.97, 0.03, f"{rs.region.area:.0%}", transform=ax.transAxes, va="bottom", ha="right", **label)
    overview[1].imshow(fill)
    return _save(fig, out, caveat)


def regions_histogram(counts: Sequence[int] | ArrayLike, out: str | Path, caveat: str = "") -> list[Path]:
    """Supplementary Figure 1: how many local regions the segmenter kept per image."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    c = np.asarray(counts, dtype=int).ravel()
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    hi = int(c.max()) if c.size else 0
    ax.hist(c, bins=np.arange(-0.5, hi + 1.5), rwidth=0.85)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 2.5 regions
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("regions per image")
    ax.set_ylabel("images")
    if c.size:
        ax.axvline(c.mean(), color="black", ls="--", lw=1)
        ax.set_title(f"mean {c.mean():.2f} regions over {c.size} images", fontsize=9)
    return _save(fig, out, caveat)
