"""Dataset adapters: read an IQA dataset from its official distribution layout.

Each adapter takes the folder the dataset was unpacked into (ROOT) and returns
:class:`Item` rows (image path, MOS, name as listed), sorted by name. Use
:func:`load_dataset`, which also applies ``limit`` and checks the images exist.
Higher MOS means better quality in every dataset here (KADID-10k's ``dmos``
column is, despite its name, a 1–5 mean opinion score).

``limit=N`` takes N items evenly spaced over the name-sorted list (item
``i·n // N`` for i = 0..N−1): deterministic, stable across runs and machines,
and spread over the whole dataset, where the first N would often be a single
distortion type (KADID-10k) or generator (AGIQA-3K).
"""

from __future__ import annotations

import csv
import difflib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IQAError

if TYPE_CHECKING:
    import numpy as np


class DatasetError(IQAError):
    """A dataset folder that does not have the expected layout."""


@dataclass(frozen=True)
class Item:
    """One image of a dataset: where it is, its MOS, and its name in the annotations."""

    path: Path
    mos: float
    name: str


# ----------------------------------------------------------------------- helpers


def _require_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{dataset}: annotation file not found: {path}")
    return path


def _read_csv(path: Path, columns: Iterable[str], dataset: str) -> list[dict[str, str]]:
    """Rows of a CSV (BOM tolerated), after checking that the needed columns exist."""
    with _require_file(path, dataset).open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        _check_columns(path, reader.fieldnames or [], columns)
        return list(reader)


def _check_columns(path: Path, header: list[str], columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: missing column {', '.join(map(repr, missing))} (columns: {', '.join(map(str, header))})"
        )


def _mos(value: object, path: Path, column: str, row: int) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: row {row}: {column} is not a number: {value!r}") from None


def _items(rows: list[dict[str, Any]], path: Path, name_col: str, mos_col: str, images: Path) -> list[Item]:
    """Items from annotation rows; row numbers in errors count the header as row 1."""
    return [
        Item(images / r[name_col], _mos(r[mos_col], path, mos_col, i), r[name_col]) for i, r in enumerate(rows, start=2)
    ]


# ---------------------------------------------------------------------- adapters


def koniq10k(root: Path, mos_column: str = "MOS", image_dir: str = "1024x768") -> list[Item]:
    """KonIQ-10k: koniq10k_scores_and_distributions.csv, images in 1024x768/ (MOS 1–5).

    The default column is ``MOS`` (1–5); ``mos_column="MOS_zscore"`` selects
    the 0–100 z-scores most IQA code trains on (``--dataset-option koniq10k.mos_column=MOS_zscore``).
    """
    path = root / "koniq10k_scores_and_distributions.csv"
    rows = _read_csv(path, ["image_name", mos_column], "koniq10k")
    return _items(rows, path, "image_name", mos_column, root / image_dir)


def spaq(root: Path, image_dir: str = "TestImage") -> list[Item]:
    """SPAQ: Annotations/MOS and Image attribute scores.xlsx, images in TestImage/ (MOS 0–100)."""
    from ..extras import EVAL, require

    require("the spaq dataset (an .xlsx file)", {"openpyxl": EVAL})
    import openpyxl

    path = _require_file(root / "Annotations" / "MOS and Image attribute scores.xlsx", "spaq")
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        values = list(book.worksheets[0].iter_rows(values_only=True))
    finally:
        book.close()
    header = [str(h).strip() if h is not None else "" for h in (values[0] if values else ())]
    _check_columns(path, header, ["Image name", "MOS"])
    rows = [
        {"Image name": str(v[header.index("Image name")]), "MOS": v[header.index("MOS")]}
        for v in values[1:]
        if v[header.index("Image name")] is not None  # trailing blank rows
    ]
    return _items(rows, path, "Image name", "MOS", root / image_dir)


LIVEC_TRAINING = 7


def livec(root: Path, include_training: bool = False, image_dir: str = "Images") -> list[Item]:
    """LIVE Challenge: Data/AllImages_release.mat + Data/AllMOS_release.mat, images in Images/.

    The first 7 entries are the database's training images (t1.bmp … t7.bmp,
    stored in Images/trainingImages/) and are not part of the 1162-image
    benchmark the literature reports; they are left out unless
    ``include_training``.
    """
    names_path = _require_file(root / "Data" / "AllImages_release.mat", "livec")
    mos_path = _require_file(root / "Data" / "AllMOS_release.mat", "livec")
    names = [str(cell.ravel()[0]) for cell in _mat_var(names_path, "AllImages_release").ravel()]
    mos = _mat_var(mos_path, "AllMOS_release").ravel().astype(float)
    if len(names) != len(mos):
        raise DatasetError(f"{names_path} lists {len(names)} images but {mos_path} {len(mos)} MOS")
    images = root / image_dir
    items = [
        Item(images / "trainingImages" / n if i < LIVEC_TRAINING else images / n, float(s), n)
        for i, (n, s) in enumerate(zip(names, mos, strict=True))
    ]
    return items if include_training else items[LIVEC_TRAINING:]


def _mat_var(path: Path, name: str) -> np.ndarray:
    import scipy.io

    data = scipy.io.loadmat(path)
    if name not in data:
        found = [k for k in data if not k.startswith("__")]
        raise DatasetError(f"{path}: no variable {name!r} (found: {', '.join(found)})")
    return data[name]


def kadid10k(root: Path, image_dir: str = "images") -> list[Item]:
    """KADID-10k: dmos.csv (dist_img, ref_img, dmos, var), images in images/ (MOS 1–5)."""
    path = root / "dmos.csv"
    rows = _read_csv(path, ["dist_img", "dmos"], "kadid10k")
    return _items(rows, path, "dist_img", "dmos", root / image_dir)


AGIQA_IMAGE_DIRS = ("images", "Images", "AGIQA-3K", "AGIQA-3k", "AGIQA3K", ".")


def agiqa3k(root: Path, mos_column: str = "mos_quality", image_dir: str | None = None) -> list[Item]:
    """AGIQA-3K: data.csv (name, prompt, …, mos_quality, mos_align …).

    The official release ships data.csv beside a zip of the images, which
    copies unpack under different folder names; without ``image_dir`` the
    first of images/, Images/, AGIQA-3K/, AGIQA-3k/, AGIQA3K/ or ROOT itself
    that holds the first listed image is used. ``mos_column="mos_align"``
    selects text-image alignment instead of perceptual quality.
    """
    path = root / "data.csv"
    rows = _read_csv(path, ["name", mos_column], "agiqa3k")
    if image_dir is None and rows:
        first = rows[0]["name"]
        found = [d for d in AGIQA_IMAGE_DIRS if (root / d / first).is_file()]
        if not found:
            raise DatasetError(
                f"agiqa3k: none of {', '.join(d + '/' for d in AGIQA_IMAGE_DIRS)} under {root} "
                f"holds {first}; pass image_dir"
            )
        image_dir = found[0]
    return _items(rows, path, "name", mos_column, root / (image_dir or "."))


def generic_csv(root: Path, path_column: str | None = "path", mos_column: str = "mos") -> list[Item]:
    """Any CSV of (image path, MOS): ROOT is the CSV file; relative paths are resolved
    against the CSV's folder. ``path_column=None`` reads MOS only (for the Table 1 bound)."""
    if root.is_dir():
        raise DatasetError(f"csv: ROOT must be the CSV file itself, got the folder {root}")
    rows = _read_csv(root, [c for c in (path_column, mos_column) if c], "csv")
    items = []
    for i, r in enumerate(rows, start=2):
        name = r[path_column] if path_column else f"row{i:09d}"
        items.append(Item(root.parent / name, _mos(r[mos_column], root, mos_column, i), name))
    return items


DATASETS: dict[str, Callable[..., list[Item]]] = {
    "koniq10k": koniq10k,
    "spaq": spaq,
    "livec": livec,
    "kadid10k": kadid10k,
    "agiqa3k": agiqa3k,
    "csv": generic_csv,
}
"""name -> adapter(root, **options); names are matched ignoring case, '-' and '_'."""


# ----------------------------------------------------------------------- loading


def subset(items: list[Item], limit: int | None) -> list[Item]:
    """``limit`` items evenly spaced over ``items`` (all of them when limit is None or ≥ n)."""
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise DatasetError(f"limit must be a positive number of images, got {limit}")
    n = len(items)
    return [items[i * n // limit] for i in range(limit)]


def resolve_name(name: str) -> str:
    """The registry key for ``name`` ("KonIQ-10k" -> "koniq10k"), or an error with suggestions."""
    key = name.lower().replace("-", "").replace("_", "")
    if key in DATASETS:
        return key
    close = difflib.get_close_matches(key, DATASETS, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise DatasetError(f"unknown dataset {name!r}.{hint} Available: {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    root: str | Path,
    limit: int | None = None,
    check_images: bool = True,
    **options: object,
) -> list[Item]:
    """Items of dataset ``name`` unpacked at ``root``, name-sorted, ``limit`` applied.

    ``options`` go to the adapter (e.g. ``image_dir``, ``mos_column``; see
    each adapter's signature). Only the selected images are checked on disk,
    so a partial copy serves a ``limit`` run; ``check_images=False`` skips
    that (the MOS alone serves the Table 1 bound).
    """
    key = resolve_name(name)
    adapter = DATASETS[key]
    accepted = [p for p in inspect.signature(adapter).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DatasetError(f"{key}: unknown option {', '.join(unknown)} (accepted: {', '.join(accepted)})")
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{key}: dataset root not found: {root}")
    items = sorted(adapter(root, **options), key=lambda it: it.name)
    if not items:
        raise DatasetError(f"{key}: the annotations under {root} list no images")
    items = subset(items, limit)
    missing = [it.path for it in items if check_images and not it.path.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:3])
        raise DatasetError(
            f"{key}: {len(missing)} of {len(items)} listed images are missing under {root}, e.g. {shown}"
        )
    return items
