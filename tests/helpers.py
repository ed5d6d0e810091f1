"""Test components and fixtures' building blocks for the core suite (never shipped in plugins/).

``BrightnessScorer`` turns a view's mean brightness into level probabilities, so
scores are deterministic and follow the pixels; it records every batch it receives
and can be told to fail on one image or to raise KeyboardInterrupt after N calls.
``QuadrantSegmenter`` returns hand-made masks at half the image resolution.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from iqa_core.api import LevelProbs, Params, Scorer, Segmenter, Standard, View


@dataclass
class Recorder:
    """What the test components saw: scorer batches (as (source, view key)) and segmenter calls."""

    batches: list[list[tuple[str, str]]] = field(default_factory=list)
    segmented: list[tuple[int, int]] = field(default_factory=list)  # image (h, w) per call
    loads: int = 0

    def reset(self) -> None:
        self.batches.clear()
        self.segmented.clear()
        self.loads = 0

    @property
    def views(self) -> list[tuple[str, str]]:
        return [v for batch in self.batches for v in batch]


RECORDER = Recorder()


def brightness_probs(image: Image.Image, k: int, sharpness: float = 1.0) -> np.ndarray:
    """Level probabilities peaked at level brightness * (K - 1) (0-based)."""
    b = float(np.asarray(image.convert("L"), dtype=np.float64).mean()) / 255.0
    centre = b * (k - 1)
    logits = -sharpness * (np.arange(k) - centre) ** 2
    p = np.exp(logits - logits.max())
    return p / p.sum()


class BrightnessScorer(Scorer):
    """Test scorer: level probabilities from a view's mean brightness."""

    class Params(Params):
        batch_size: int = 4
        sharpness: float = 1.0
        fail_on: str | None = None  # a substring of View.source: raise on that image's views
        interrupt_after: int | None = None  # raise KeyboardInterrupt on call N + 1

    uncached_params = Scorer.uncached_params | {"fail_on", "interrupt_after"}

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.calls = 0

    def load(self, standard: Standard) -> None:
        RECORDER.loads += 1

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        if self.params.interrupt_after is not None and self.calls >= self.params.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        fail = self.params.fail_on
        if fail is not None and any(fail in v.source for v in views):
            raise RuntimeError(f"cannot score a view of {fail}")
        RECORDER.batches.append([(v.source, v.key) for v in views])
        probs = np.stack([brightness_probs(v.image, standard.k, self.params.sharpness) for v in views])
        return LevelProbs(probs.reshape(len(views), standard.k), standard.values)


class QuadrantSegmenter(Segmenter):
    """Test segmenter: hand-made masks at half resolution.

    Masks (working resolution h = H // 2, w = W // 2): the top-left quadrant (area
    0.25), the bottom-right quadrant (0.25) and one pixel (dropped by t = 0.01).
    The complement (top-right + bottom-left) has area 0.5. Images under 8 pixels wide fail.
    """

    def segment(self, image: np.ndarray) -> list[np.ndarray]:
        if image.shape[1] < 8:
            raise ValueError(f"image too small to segment: {image.shape[1]} pixels wide")
        h, w = image.shape[0] // 2, image.shape[1] // 2
        RECORDER.segmented.append(image.shape[:2])
        a = np.zeros((h, w), dtype=bool)
        a[: h // 2, : w // 2] = True
        b = np.zeros((h, w), dtype=bool)
        b[h // 2 :, w // 2 :] = True
        dot = np.zeros((h, w), dtype=bool)
        dot[h // 2, 0] = True
        return [a, b, dot]


def quadrant_image(base: int, bright: int = 255, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A ``base``-grey image whose top-left quadrant is ``bright``."""
    w, h = size
    arr = np.full((h, w, 3), base, dtype=np.uint8)
    arr[: h // 2, : w // 2] = bright
    return Image.fromarray(arr)


def write_images(folder: Path, n: int, start: int = 0) -> list[Path]:
    """``n`` distinct PNGs (different grey levels) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + n):
        path = folder / f"img{i:02d}.png"
        quadrant_image(base=(20 + 23 * i) % 230).save(path)
        paths.append(path)
    return paths


def recipe(store: Path | str | None, **overrides) -> dict:
    """A recipe dict using the test components (registered as test_brightness / test_quadrants)."""
    data = {
        "segmenter": {"name": "test_quadrants"},
        "regions": {"min_area": 0.01, "views": ["bbox", "whole"], "min_view_side": 0},
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [{"name": "test_brightness", "params": {"batch_size": 4}}],
        "decode": "expected",
        "aggregate": {"name": "mix_grained"},
        "runtime": {"store": None if store is None else str(store), "chunk_images": 8, "workers": 2},
    }
    data.update(overrides)
    return data


def pip_install_target(source: Path, target: Path) -> None:
    """``pip install --target`` of a source tree (no deps, no isolation), as a user installs a plugin.

    Install from a copy: setuptools writes ``build/`` beside the source.
    """
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "--target", str(target), str(source)], check=True)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int, height: int) -> None:
    """A valid greyscale PNG of zeros: under 1 MB that would decode to width x height bytes."""
    squeeze = zlib.compressobj(1)
    row = bytes(width + 1)  # filter byte + pixels
    data = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
