"""pluggy hook specifications: cross-cutting extensions every installed plugin may join.

Components (segmenters, scorers, …) are looked up by name in :mod:`iqa_core.registry`;
hooks are for things that are broadcast to all plugins. Implement them in a module
registered under the ``iqa`` entry-point group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .api import ImageResult

hookspec = pluggy.HookspecMarker("iqa")
hookimpl = pluggy.HookimplMarker("iqa")


@hookspec
def iqa_register_commands(cli: click.Group) -> None:
    """Add commands to the ``iqa`` command line."""


@hookspec
def iqa_image_scored(result: ImageResult, recipe: dict[str, Any]) -> None:
    """Receive each finished image result (scored or failed), e.g. to stream it elsewhere."""
