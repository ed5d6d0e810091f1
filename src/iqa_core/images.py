"""Finding input images and reading them into RGB, with clear errors for bad files.

A bad file raises :class:`ImageError` naming the path and what is wrong; the
engine turns it into an error row and goes on with the rest.
"""

from __future__ import annotations

import glob
import hashlib
import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, IQAError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's own bomb threshold (2 x MAX_IMAGE_PIXELS)
# decode_image enforces max_pixels itself; PIL's warning below that would only be noise
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """Files, folders (recursive, image suffixes), globs and list files -> paths, in order.

    A list file (.txt/.lst/.list) holds one path per line, relative to its folder.
    A path that matches nothing is kept, so it becomes an error row, not a lost input.
    Duplicates are dropped, first occurrence wins.
    """
    if isinstance(inputs, (str, Path)):  # one path, not an iterable of its characters
        inputs = [inputs]
    inputs = list(inputs)
    out: dict[str, None] = {}
    _expand(inputs, out)
    if not out:
        raise IQAError(f"no images found in: {', '.join(map(str, inputs)) or '(no inputs)'}")
    return list(out)


def _expand(inputs: Iterable[str | Path], out: dict[str, None]) -> None:
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found = (p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            out.update((str(p), None) for p in sorted(found))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
            _expand([str(path.parent / ln) for ln in lines if ln and not ln.startswith("#")], out)
        elif path.exists():
            out[str(path)] = None  # normalised ("./a.jpg" -> "a.jpg"), so duplicates match
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            out.update((p, None) for p in matches if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file())
        else:
            out[text] = None


@dataclass
class LoadedImage:
    """An input read once: its content hash and its RGB pixels."""

    path: str
    content_hash: str
    image: Image.Image

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read bytes once, hash them (the store key), decode to RGB with EXIF orientation."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"{path}: empty file")
    return LoadedImage(str(path), content_hash(data), decode_image(data, str(path), max_pixels))


def decoded_bytes(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """Bytes the RGB image ``path`` decodes to takes in PIL (4 per pixel), from its header alone.

    0 for a file that will be refused (unreadable, not an image, over ``max_pixels``): its
    error row holds no pixels.
    """
    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
    except Exception:  # PIL raises many kinds; read_image reports the real reason
        return 0
    return 4 * pixels if pixels <= max_pixels else 0


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def decode_image(data: bytes, where: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Bytes -> RGB. ``max_pixels`` is the decompression-bomb guard; PIL's own must not be lower.

    PIL refuses above twice ``Image.MAX_IMAGE_PIXELS`` and warns above it, so that limit is
    raised to ours (process-wide, once; decode threads race benignly to the same value) and
    its warning is filtered out at import: every image over ``max_pixels`` is refused here.
    """
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise ImageError(
                f"{where}: {img.width}x{img.height} exceeds the {max_pixels}-pixel limit "
                "(decompression-bomb guard; raise runtime.max_pixels to allow it)"
            )
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no second copy of a large image
        return to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{where}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{where}: refused as a decompression bomb: {exc}") from None
    except MemoryError:
        raise ImageError(f"{where}: too large to decode in memory") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error, IndexError, ...
        raise ImageError(f"{where}: truncated or corrupt image: {type(exc).__name__}: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Alpha is composited over white; 16-bit is rescaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        if img.mode == "F" and arr.max(initial=0) <= 1.0:
            peak = 1.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img
