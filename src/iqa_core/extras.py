"""Optional packages: find a missing one before any work starts, and name what to install.

The core install (``pip install iqa``) carries no torch, model library or plotting
package. A component lists the modules it imports in ``load()`` in its ``requires``
class attribute, mapping each module to the pip argument that installs it; recipe
validation checks them all at once, so a missing package is one line with exit 2, not
a traceback (or an error row for every image).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping

from .errors import IQAError

MODELS = "iqa[models]"
EVAL = "iqa[eval]"
SAM2 = "sam2==1.1.0"  # installed after torch with --no-build-isolation (docs/getting-started.md: Installing)


class MissingPackage(IQAError):
    """An optional package a command or component needs is not installed."""


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken __spec__
        return False


def missing(requires: Mapping[str, str]) -> list[str]:
    """The modules of ``requires`` (module -> pip argument) that are not installed."""
    return [module for module in requires if not is_installed(module)]


def install_hint(requires: Mapping[str, str], modules: Iterable[str]) -> str:
    """``pip install 'iqa[models]' 'sam2==1.1.0'`` for the given missing modules."""
    targets = dict.fromkeys(requires[m] for m in modules)
    return "pip install " + " ".join(f"'{t}'" for t in targets)


def require(what: str, requires: Mapping[str, str]) -> None:
    """Raise :class:`MissingPackage` naming every missing module of ``requires`` and what installs it."""
    absent = missing(requires)
    if absent:
        raise MissingPackage(f"{what} needs {', '.join(absent)}: {install_hint(requires, absent)}")
