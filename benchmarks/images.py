"""Synthetic test images with structure SAM2 can segment: smooth colour noise plus shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def textured_image(width: int, height: int, seed: int = 0, shapes: int = 12) -> Image.Image:
    """Smooth multi-scale noise with filled ellipses/rectangles/polygons in distinct colours.

    Built at most 1024 pixels on the long side and resized up (so a 12-megapixel image is
    fast to make), then fine grain noise at full size, like a photo's texture.
    """
    rng = np.random.default_rng(seed)
    scale = min(1.0, 1024 / max(width, height))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    base = np.zeros((h, w, 3), np.float32)
    for cells, weight in ((4, 0.6), (16, 0.3), (64, 0.1)):
        coarse = rng.random((cells, max(2, cells * w // h), 3)).astype(np.float32)
        layer = Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        base += weight * np.asarray(layer, np.float32)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(shapes):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        sw, sh = rng.integers(w // 12, w // 3), rng.integers(h // 12, h // 3)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        box = (int(x0), int(y0), int(x0 + sw), int(y0 + sh))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        else:
            pts = [(int(x0 + rng.integers(0, sw)), int(y0 + rng.integers(0, sh))) for _ in range(5)]
            draw.polygon(pts, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1))
    if (w, h) != (width, height):
        img = img.resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 4, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8))


def write_images(
    directory: str | Path, sizes: list[tuple[int, int]], per_size: int, seed: int = 0
) -> dict[tuple[int, int], list[Path]]:
    """``per_size`` JPEGs of each (width, height) in ``directory``; paths by size."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[tuple[int, int], list[Path]] = {}
    for w, h in sizes:
        paths = []
        for i in range(per_size):
            path = directory / f"img_{w}x{h}_{i:03d}.jpg"
            if not path.exists():
                textured_image(w, h, seed=seed * 100003 + i * 7919 + w + h).save(path, quality=92)
            paths.append(path)
        out[(w, h)] = paths
    return out
