"""The pluggy manager: hook implementations from the ``iqa`` entry-point group."""

from __future__ import annotations

from functools import lru_cache

import pluggy

from . import hookspecs


@lru_cache(maxsize=1)
def manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("iqa")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints("iqa")
    return pm
