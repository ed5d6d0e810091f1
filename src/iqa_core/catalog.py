"""The paper's recipes, shipped inside the package and found by name.

``llm_iqa``, ``llm_iqa.yaml``, ``ablations/table3/row8`` (and the repository-relative
``recipes/llm_iqa.yaml``) all name a packaged recipe. A real path always wins: these
names are looked up only when no such file or folder exists.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


@dataclass(frozen=True)
class Bundled:
    """One packaged recipe: its short name, file and one-line description."""

    name: str
    path: Path
    description: str


def _name(text: str) -> str:
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if parts and parts[0] == "recipes":
        parts = parts[1:]
    name = "/".join(parts)
    return name.removesuffix(".yaml").removesuffix(".yml")


def find(text: str) -> Path | None:
    """The packaged recipe file, or folder of recipes, that ``text`` names; None if none does."""
    name = _name(str(text))
    if not name or ".." in PurePosixPath(name).parts:
        return None
    candidate = RECIPES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    folder = RECIPES_DIR / name
    return folder if folder.is_dir() and name != "." else None


def names() -> list[str]:
    """Every packaged recipe's short name, top-level recipes first."""
    paths = sorted(RECIPES_DIR.rglob("*.yaml"), key=lambda p: (len(p.relative_to(RECIPES_DIR).parts), p))
    return [p.relative_to(RECIPES_DIR).with_suffix("").as_posix() for p in paths]


def listing() -> list[Bundled]:
    """Every packaged recipe with the ``description`` field of its file."""
    rows = []
    for name in names():
        path = RECIPES_DIR / f"{name}.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rows.append(Bundled(name, path, str(data.get("description", ""))))
    return rows


def suggest(text: str) -> str:
    """A hint for a name that is neither a file nor a packaged recipe."""
    close = difflib.get_close_matches(_name(str(text)), names(), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}`iqa recipes` lists the packaged recipes"
