"""Lazy registry of components over entry-point groups ``iqa.<kind>``.

A recipe names one component per slot, so lookups are by name and only the
named entry point is imported. A name may also be ``package.module:Class``:
importing runs the module's code, so by default only a module of an installed
distribution, not one found in the current directory, may be named that way
(``allow_import`` lifts this; :func:`check_importable`). Tests and notebooks
may :func:`register` classes in-process.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from dataclasses import dataclass
from functools import cache
from importlib.machinery import PathFinder
from importlib.metadata import entry_points, packages_distributions
from pathlib import Path

from . import contract
from .api import COMPONENT_KINDS, Component
from .errors import IQAError, PluginNotFound

KINDS: tuple[str, ...] = tuple(COMPONENT_KINDS)


@dataclass(frozen=True)
class Entry:
    """One registered component, not yet imported."""

    kind: str
    name: str
    target: str  # "module:attr"
    distribution: str

    def load(self) -> type[Component]:
        module_name, _, attr = self.target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise PluginNotFound(
                f"{self.kind[:-1]} {self.name!r} from {self.distribution} could not be imported ({self.target}): {exc}"
            ) from exc
        return _check_class(obj, self.kind, f"{self.name!r} ({self.target}, from {self.distribution})")


_in_process: dict[str, dict[str, type[Component]]] = {kind: {} for kind in KINDS}


class DuplicatePlugin(IQAError):
    """Two distributions register one name: which one runs would be an accident."""


@cache
def _discovered(kind: str) -> dict[str, list[Entry]]:
    """Entry points by name; more than one distribution per name is kept to report it."""
    found: dict[str, list[Entry]] = {}
    for ep in entry_points(group=f"iqa.{kind}"):
        dist = ep.dist.name if ep.dist is not None else "<unknown>"
        same = found.setdefault(ep.name, [])
        if all(e.distribution != dist for e in same):
            same.append(Entry(kind, ep.name, ep.value, dist))
    return found


def _unique(kind: str, name: str) -> Entry:
    candidates = _discovered(kind)[name]
    if len(candidates) > 1:
        both = " and ".join(f"{e.distribution} ({e.target})" for e in candidates)
        raise DuplicatePlugin(
            f"{kind[:-1]} {name!r} is registered by more than one distribution: {both}; "
            "uninstall one, or name the class directly as 'module:Class' in the recipe"
        )
    return candidates[0]


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin at run time)."""
    _discovered.cache_clear()


def register(kind: str, name: str, cls: type[Component]) -> None:
    """Register a class in-process under ``name`` (tests, notebooks)."""
    _check_kind(kind)
    _in_process[kind][name] = _check_class(cls, kind, repr(name))


def unregister(kind: str, name: str) -> None:
    _in_process[kind].pop(name, None)


def available(kind: str) -> list[str]:
    _check_kind(kind)
    return sorted(set(_discovered(kind)) | set(_in_process[kind]))


def entries(kind: str) -> list[Entry]:
    """Every registered component of ``kind``; a name two distributions claim appears twice."""
    _check_kind(kind)
    rows = [e for found in _discovered(kind).values() for e in found]
    rows += [
        Entry(kind, name, f"{cls.__module__}:{cls.__qualname__}", "<in-process>")
        for name, cls in _in_process[kind].items()
    ]
    return sorted(rows, key=lambda e: (e.name, e.distribution))


def get(kind: str, name: str, allow_import: bool = False) -> type[Component]:
    """The class for ``name``: in-process, then entry points, then ``module:Class``."""
    _check_kind(kind)
    if name in _in_process[kind]:
        cls = _in_process[kind][name]
    elif name in _discovered(kind):
        cls = _unique(kind, name).load()
    elif ":" in name:
        if not allow_import:
            check_importable(name)
        cls = Entry(kind, name, name, "<direct reference>").load()
    else:
        names = available(kind)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise PluginNotFound(f"unknown {kind[:-1]} {name!r}; {hint}available: {', '.join(names) or '(none)'}")
    return cls


def check_importable(target: str) -> None:
    """Refuse a ``module:Class`` whose module no installed distribution provides, or that the
    current directory would shadow, before anything is imported (importing runs its code)."""
    module = target.partition(":")[0]
    top = module.partition(".")[0]
    hint = "set runtime.allow_imports: true in the recipe (or pass --allow-import) if you trust it"
    if not top or top not in packages_distributions():
        raise PluginNotFound(
            f"{target}: {top or module!r} is not a module of an installed distribution, so it is not "
            f"imported; install it as a package, or {hint}"
        )
    cwd = Path.cwd()
    if not any(entry in ("", ".") or Path(entry).resolve() == cwd for entry in sys.path):
        return
    local = PathFinder.find_spec(top, [str(cwd)])  # finds without executing anything
    if local is not None:
        raise PluginNotFound(
            f"{target}: {top!r} would be imported from the current directory ({local.origin}), not from the "
            f"installed distribution; run from another folder, or {hint}"
        )


def _check_kind(kind: str) -> None:
    if kind not in COMPONENT_KINDS:
        raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")


def _check_class(obj: object, kind: str, where: str) -> type[Component]:
    base = COMPONENT_KINDS[kind]
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise PluginNotFound(f"{where} is not a {base.__name__} subclass")
    contract.check(obj, kind, where)
    return obj
