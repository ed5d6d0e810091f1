"""MkDocs hook: the pages' generated parts, made from the code when the site is built.

``<!-- iqa:components -->`` becomes what ``iqa plugins NAME`` prints for every installed
component, ``<!-- iqa:recipes -->`` the ``iqa recipes`` listing, and ``<!-- iqa:recipes-readme -->``
the packaged recipes' own README (what each reproduces). Nothing is copied by hand, so the
site cannot drift from the plugins' ``Params`` or the recipe files.
"""

from __future__ import annotations

from typing import Any


def components() -> str:
    from iqa_core import registry
    from iqa_core.commands import describe_component

    parts = []
    for kind in registry.KINDS:
        parts.append(f"### {kind.capitalize()}\n")
        for name in registry.available(kind):
            text = "\n".join(describe_component(kind, name, installed=False))
            parts.append(f"#### `{name}`\n\n```text\n$ iqa plugins {name}\n{text}\n```\n")
    return "\n".join(parts)


def recipes() -> str:
    from iqa_core.catalog import listing

    rows = ["| name | description |", "|---|---|"]
    rows += [f"| `{r.name}` | {r.description.replace('|', '/')} |" for r in listing()]
    return "\n".join(rows) + "\n"


def recipes_readme() -> str:
    """The packaged recipes' README without its title, its headings one level down."""
    from iqa_core.catalog import RECIPES_DIR

    lines = (RECIPES_DIR / "README.md").read_text(encoding="utf-8").splitlines()[1:]
    return "\n".join("##" + line if line.startswith("#") else line for line in lines)


GENERATED = {"<!-- iqa:components -->": components, "<!-- iqa:recipes -->": recipes,
             "<!-- iqa:recipes-readme -->": recipes_readme}  # fmt: skip


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
