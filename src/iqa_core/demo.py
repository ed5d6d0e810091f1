"""What ``iqa demo`` builds: small random models of the real architectures, generated images
with graded degradations and their made-up MOS, and a recipe of the paper's shape over them.

Everything is local and takes seconds on a CPU, so a user can see every command work before
downloading any weights. Random weights make the scores meaningless; the demo says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

CAVEAT = "random weights: not a measurement"
"""On every figure the demo's recipe makes: a figure cut out of the terminal must not pass for a result."""

# (file name, blur radius, noise sigma, made-up MOS): quality falls with blur and noise.
IMAGES = [
    ("clean.png", 0.0, 0.0, 4.6),
    ("blur1.png", 1.5, 0.0, 3.9),
    ("blur2.png", 3.0, 0.0, 2.8),
    ("noise1.png", 0.0, 12.0, 3.6),
    ("noise2.png", 0.0, 30.0, 2.2),
    ("blur_noise.png", 2.5, 25.0, 1.4),
]


@dataclass(frozen=True)
class DemoFiles:
    recipe: Path
    images: Path
    mos: Path


def scene(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    """A synthetic photo: a sky-to-ground gradient, a sun, a house and some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    sky = np.stack([90 + 60 * yy / height, 140 + 60 * yy / height, 230 - 40 * yy / height], -1)
    ground = np.stack([60 + 20 * xx / width, 140 - 30 * yy / height, 50 + 0 * xx], -1)
    img = np.where((yy > height * 0.6)[..., None], ground, sky)
    img[(xx - width * 0.8) ** 2 + (yy - height * 0.2) ** 2 < (height * 0.1) ** 2] = (250, 220, 80)
    img[int(height * 0.4) : int(height * 0.75), int(width * 0.2) : int(width * 0.45)] = (180, 60, 50)
    img[int(height * 0.55) : int(height * 0.75), int(width * 0.28) : int(width * 0.35)] = (70, 40, 30)
    img = img + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(folder: Path) -> Path:
    """The degraded copies of :func:`scene` and ``mos.csv`` (a ``csv`` dataset for ``iqa eval``)."""
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    base = Image.fromarray(scene())
    rng = np.random.default_rng(1)
    rows = ["path,mos"]
    for name, blur, noise, mos in IMAGES:
        img = base.filter(ImageFilter.GaussianBlur(blur)) if blur else base
        pixels = np.asarray(img, dtype=np.float64) + rng.normal(0, noise, (img.height, img.width, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / name)
        rows.append(f"{name},{mos}")
    mos_csv = folder / "mos.csv"
    mos_csv.write_text("\n".join(rows) + "\n")
    return mos_csv


def quiet() -> None:
    """Keep the demo's output to what the commands say: no save/load progress bars, and not
    sam2's notice that torch.jit.script is deprecated (in this process only)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)


def build(out: Path) -> DemoFiles:
    """Write models, images, the MOS table and the recipe under ``out`` (models are reused if there)."""
    from iqa_plugins.testing import tiny_vlm
    from iqa_plugins.testing.tiny_sam2 import PERMISSIVE, TINY_SIZE, build_tiny_sam2

    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    sam = {"config": str(models / "sam2" / "tiny_sam2.yaml"), "checkpoint": str(models / "sam2" / "tiny_sam2.pt")}
    if not Path(sam["checkpoint"]).is_file():
        sam = build_tiny_sam2(models / "sam2", image_size=TINY_SIZE)
    qwen = models / "qwen2_vl"
    if not (qwen / "config.json").is_file():
        tiny_vlm.build_qwen2_vl(qwen)
    images = out / "images"
    mos = write_images(images)
    recipe = {
        "description": "iqa demo: the LLM-IQA shape on tiny RANDOM models (scores are meaningless)",
        "caveat": CAVEAT,
        "segmenter": {"name": "sam2", "params": {**sam, **PERMISSIVE, "device": "cpu"}},
        "regions": {"min_area": 0.01, "complement": True, "views": ["bbox", "whole"]},
        "standard": {"name": "word", "params": {"levels": 7}},
        "scorers": [{"name": "hf_vlm", "label": "qwen2_vl", "params": {"model": str(qwen), "device": "cpu"}}],
        "decode": "expected",
        "aggregate": {"name": "mix_grained", "params": {"lam": 1.0, "local": "area"}},
        "runtime": {"store": str(out / "store.sqlite"), "workers": 1},
    }
    path = out / "tiny_llm_iqa.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    return DemoFiles(path, images, mos)
