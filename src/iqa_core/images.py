"""Finding input images and reading them into RGB, with clear errors for bad files.

A bad file raises :class:`ImageError` naming the path and what is wrong; the
engine turns it into an error row and goes on with the rest.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, IQAError
from .sources import is_manifest, is_uri, manifest_rows, read_uri

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
DEFAULT_MAX_PIXELS = 178_956_970  # PIL's own bomb threshold (2 x MAX_IMAGE_PIXELS)
# (width, height) -> the least (width, height) a reduced decode must keep (see decode_image)
LeastSize = Callable[[tuple[int, int]], tuple[int, int]]
# decode_image enforces max_pixels itself; PIL's warning below that would only be noise
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


Input = tuple[str, "dict[str, Any] | None"]  # a path or URI, and its manifest row's other columns


def iter_inputs(inputs: Iterable[str | Path], some_must_exist: bool = False) -> Iterator[Input]:
    """Files, folders (recursive, image suffixes), globs, list files, manifests and URIs -> inputs, in order.

    A list file (.txt/.lst/.list) holds one path per line, relative to its folder. A manifest
    (.csv/.jsonl/.parquet, see :mod:`sources`) is read a row at a time as the run goes, never
    held: each row is one input, with its other columns, and one output row (a manifest's
    rows are not deduplicated). The other inputs are listed first; among them duplicates
    are dropped, first occurrence wins. A path that matches nothing is kept, so it becomes
    an error row, not a lost input. Finding nothing at all is a usage error, and so, with
    ``some_must_exist``, is finding only paths that do not exist (a mistyped folder).
    """
    if isinstance(inputs, (str, Path)):  # one path, not an iterable of its characters
        inputs = [inputs]
    inputs = list(inputs)
    shown = ", ".join(map(str, inputs)) or "(no inputs)"
    seen: dict[str, None] = {}
    parts: list[Path | list[str]] = []  # per input: a manifest (streamed), or its new paths
    for item in inputs:
        path = Path(str(item))
        if not is_uri(str(item)) and is_manifest(path):
            parts.append(path)
            continue
        found: dict[str, None] = {}
        _expand([item], found)
        parts.append([p for p in found if p not in seen])
        seen.update(found)
    if not any(isinstance(part, Path) for part in parts):
        if not seen or (some_must_exist and not any(is_uri(p) or Path(p).exists() for p in seen)):
            raise IQAError(f"no images found in: {shown}")
    return _stream(parts, shown)


def _stream(parts: list[Path | list[str]], shown: str) -> Iterator[Input]:
    given = False
    for part in parts:
        if isinstance(part, Path):
            for row in manifest_rows(part):
                path = row.pop("path")
                given = True
                yield path, row
        else:
            given = given or bool(part)
            yield from ((p, None) for p in part)
    if not given:  # only empty manifests
        raise IQAError(f"no images found in: {shown}")


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """The paths and URIs of :func:`iter_inputs`, as a list."""
    return [path for path, _ in iter_inputs(inputs)]


def _expand(inputs: Iterable[str | Path], out: dict[str, None]) -> None:
    for item in inputs:
        text = str(item)
        path = Path(text)
        if is_uri(text):  # never globbed nor looked up locally: its reader reports what is wrong
            out[text] = None
        elif is_manifest(path):
            out.update((row["path"], None) for row in manifest_rows(path))
        elif path.is_dir():
            out.update((p, None) for p in _scan(path))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            _expand(_list_file(path), out)
        elif path.exists():
            out[str(path)] = None  # normalised ("./a.jpg" -> "a.jpg"), so duplicates match
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            out.update((p, None) for p in matches if _is_candidate(Path(p)))
        else:
            out[text] = None


def _is_candidate(path: Path) -> bool:
    """An image suffix and not a folder. FIFOs, dangling links and link loops are kept, so
    that each gets an error row saying what it is instead of vanishing from the run."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir()


def _scan(folder: Path) -> list[str]:
    """Image files under ``folder``, sorted; links to folders are not followed (no loops).

    A folder that cannot be listed is kept as an entry of its own: reading it gives an
    error row naming it, so its images are not silently missing from the run.
    """
    found: list[str] = []

    def unlistable(exc: OSError) -> None:
        if exc.filename is not None:
            found.append(str(exc.filename))

    for root, dirs, files in os.walk(folder, onerror=unlistable):
        dirs.sort()
        found += (str(Path(root, name)) for name in files if Path(name).suffix.lower() in IMAGE_SUFFIXES)
    return sorted(found, key=lambda p: Path(p).parts)


def _list_file(path: Path) -> list[str]:
    """Paths in a list file, one a line, relative to its folder; '#' starts a comment line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise IQAError(f"list file {path}: cannot read: {reason or exc}") from None
    lines = (ln.strip() for ln in text.splitlines())
    return [str(path.parent / ln) for ln in lines if ln and not ln.startswith("#")]


@dataclass
class LoadedImage:
    """An input read once: its content hash and its RGB pixels.

    ``reduced`` > 1: a JPEG decoded at 1/``reduced`` scale (``draft``); ``size`` stays the
    image's own (upright) size, so regions keep original pixel coordinates either way.
    """

    path: str
    content_hash: str
    image: Image.Image
    reduced: int = 1
    full_size: tuple[int, int] | None = None  # the image's own size when reduced

    @property
    def size(self) -> tuple[int, int]:
        return self.full_size or self.image.size

    @property
    def decode_tag(self) -> str:
        """Added to store keys of what is computed from these pixels: "" for a full decode."""
        return f"@1/{self.reduced}" if self.reduced > 1 else ""


def read_image(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, least: LeastSize | None = None, data: bytes | None = None
) -> LoadedImage:
    """Read bytes once, hash them (the store key), decode to RGB with EXIF orientation.

    ``least`` lets a JPEG decode reduced, down to the size it returns (see :func:`decode_image`).
    ``data``: the file's bytes, already read (and not read again).
    """
    if data is None:
        data = read_file(path)
    return decode_loaded(path, data, content_hash(data), max_pixels, least)


def decode_loaded(
    path: str | Path, data: bytes, digest: str, max_pixels: int = DEFAULT_MAX_PIXELS, least: LeastSize | None = None
) -> LoadedImage:
    """The bytes of ``path``, hashed to ``digest``, decoded: for a reader that looks the hash up first."""
    if not data:
        raise ImageError(f"{path}: empty file")
    image, reduced, full = decode_reduced(data, str(path), max_pixels, least)
    return LoadedImage(str(path), digest, image, reduced, full if reduced > 1 else None)


_NOT_REGULAR = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def read_file(path: str | Path) -> bytes:
    """The bytes of a regular file or a URI (:func:`sources.read_uri`), or :class:`ImageError` saying why not.

    A local file is opened non-blocking and checked before it is read, so a FIFO or a device
    such as ``/dev/zero`` is refused at once instead of hanging or filling the memory.
    """
    if is_uri(str(path)):
        return read_uri(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageError(f"{path}: broken symbolic link (to {os.readlink(path)})") from None
        raise ImageError(f"{path}: file not found") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError(f"{path}: symbolic link loop") from None
        raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise ImageError(f"{path}: not a regular file but {_NOT_REGULAR.get(kind, 'a special file')}")
    with os.fdopen(fd, "rb") as file:
        try:
            return file.read()
        except MemoryError:
            raise ImageError(f"{path}: too large to read into memory") from None
        except OSError as exc:
            raise ImageError(f"{path}: cannot read file: {exc.strerror or exc}") from None


def decoded_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, least: LeastSize | None = None) -> int:
    """Bytes the RGB image whose file holds ``data`` decodes to in PIL (4 per pixel), from its
    header alone; with ``least``, as :func:`read_image` decodes it (a JPEG maybe reduced).

    0 for an image that will be refused (not an image, over ``max_pixels``): its error row
    holds no pixels.
    """
    try:
        _follow_our_limit(max_pixels)
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > max_pixels:
                return 0
            if least is not None:
                turned = _turned(img)
                draft(img, least(img.size[::-1] if turned else img.size), turned)
            return 4 * img.width * img.height
    except Exception:  # PIL raises many kinds; read_image reports the real reason
        return 0


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def decode_image(data: bytes, where: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Bytes -> RGB. ``max_pixels`` is the decompression-bomb guard; PIL's own must not be lower.

    PIL refuses above twice ``Image.MAX_IMAGE_PIXELS`` and warns above it, so that limit is
    raised to ours (process-wide, once; decode threads race benignly to the same value) and
    its warning is filtered out at import: every image over ``max_pixels`` is refused here.
    """
    return decode_reduced(data, where, max_pixels)[0]


def decode_reduced(
    data: bytes, where: str, max_pixels: int = DEFAULT_MAX_PIXELS, least: LeastSize | None = None
) -> tuple[Image.Image, int, tuple[int, int]]:
    """Like :func:`decode_image`, but a JPEG may decode reduced (see :func:`draft`) to no less
    than ``least(size)`` pixels each way. Returns (RGB, the reduction, the upright full size).
    """
    _follow_our_limit(max_pixels)
    with _reading(where, max_pixels):
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise ImageError(
                f"{where}: {img.width}x{img.height} exceeds the {max_pixels}-pixel limit "
                "(decompression-bomb guard; raise runtime.max_pixels to allow it)"
            )
        turned = _turned(img)
    full = img.size[::-1] if turned else img.size
    want = least(full) if least is not None else None  # a plugin's own error, not the image's
    with _reading(where, max_pixels):
        reduced = draft(img, want, turned) if want is not None else 1
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no second copy of a large image
        return to_rgb(img), reduced, full


def draft(img: Image.Image, want: tuple[int, int], turned: bool = False) -> int:
    """Ask an opened, not yet loaded JPEG to decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling: far cheaper than a full decode), the smallest that keeps ``want`` (width, height;
    upright, so swapped when EXIF ``turned`` the image) each way. Returns the reduction: 1 for
    a full decode, and for every other format."""
    if img.format != "JPEG":
        return 1
    w, h = (max(1, int(side)) for side in want)
    stored = img.width
    drafted = img.draft(None, (h, w) if turned else (w, h))
    return 1 if drafted is None else round(stored / drafted[1][2])  # its box: the full size / the scale


@contextmanager
def _reading(where: str, max_pixels: int) -> Iterator[None]:
    """PIL's many exceptions while opening or decoding -> one-line :class:`ImageError` naming ``where``."""
    try:
        yield
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{where}: not an image file (or an unsupported format)") from None
    except Image.DecompressionBombError:  # PIL's own check, at twice its limit: report ours
        raise ImageError(
            f"{where}: exceeds the {max_pixels}-pixel limit (decompression-bomb guard; "
            "raise runtime.max_pixels to allow it)"
        ) from None
    except MemoryError:
        raise ImageError(f"{where}: too large to decode in memory") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error, IndexError, ...
        raise ImageError(f"{where}: truncated or corrupt image: {type(exc).__name__}: {exc}") from None


def _turned(img: Image.Image) -> bool:
    """Whether the EXIF orientation swaps width and height (``exif_transpose`` turns it by 90 degrees)."""
    return img.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)


def _follow_our_limit(max_pixels: int) -> None:
    """PIL's bomb limit raised to ``max_pixels`` (process-wide; threads race benignly to one value)."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < max_pixels:
        Image.MAX_IMAGE_PIXELS = max_pixels


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
