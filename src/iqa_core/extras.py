"""Optional packages: find a missing one before any work starts, and name what to install.

The core install (``pip install iqa``) carries no torch, model library or plotting
package. A component lists the modules it imports in ``load()`` in its ``requires``
class attribute, mapping each module (``transformers>=5.25`` where an older release
cannot run it) to the pip argument that installs it; recipe
validation checks them all at once, so a missing package is one line with exit 2, not
a traceback (or an error row for every image).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Mapping

from .errors import IQAError

MODELS = "iqa[models]"
EVAL = "iqa[eval]"
SAM2 = "sam2==1.1.0"  # installed after torch with --no-build-isolation (docs/getting-started.md: Installing)


def older(module: str, floor: str) -> bool:
    """Whether the installed distribution named ``module`` is older than ``floor`` (numeric
    release parts compared; a distribution without metadata counts as not older)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(module)
    except PackageNotFoundError:
        return False
    return numeric(installed) < numeric(floor)


def numeric(release: str) -> tuple[int, ...]:
    """(5, 25, 0) of ``5.25.0``, ``5.25.0.dev0`` or ``5.25.0+cpu``."""
    return tuple(int(part) for part in re.findall(r"\d+", release.split("+")[0])[:3])


class MissingPackage(IQAError):
    """An optional package a command or component needs is not installed."""


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken __spec__
        return False


def missing(requires: Mapping[str, str]) -> list[str]:
    """The entries of ``requires`` (module -> pip argument) that are not satisfied: a module
    that is not installed, or one older than the floor its entry names (``transformers>=5.25``)."""
    out = []
    for entry in requires:
        module, _, floor = entry.partition(">=")
        if not is_installed(module) or (floor and older(module, floor)):
            out.append(entry)
    return out


def install_hint(requires: Mapping[str, str], modules: Iterable[str]) -> str:
    """``pip install 'iqa[models]' 'sam2==1.1.0'`` for the given missing modules."""
    targets = dict.fromkeys(requires[m] for m in modules)
    return "pip install " + " ".join(f"'{t}'" for t in targets)


def require(what: str, requires: Mapping[str, str]) -> None:
    """Raise :class:`MissingPackage` naming every missing module of ``requires`` and what installs it."""
    absent = missing(requires)
    if absent:
        raise MissingPackage(f"{what} needs {', '.join(absent)}: {install_hint(requires, absent)}")
