"""``--set key.path=value``: one recipe field changed from the command line, before validation.

The edited recipe is validated exactly as a file holding the change would be, so a bad key
or value gets the recipe's own one-line error; a key that cannot be entered at all (an index
past a list's end, a field under a scalar) is refused here, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from .errors import RecipeError


def parse(text: str) -> tuple[list[str], Any]:
    """``scorers.0.params.model=/w`` -> (["scorers", "0", "params", "model"], "/w"); the value is YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise RecipeError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. scorers.0.params.device=cuda:1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or exc
        raise RecipeError(f"--set {key}: the value {raw!r} is not valid YAML: {problem}") from None
    return parts, value


def apply(data: dict[str, Any], pairs: Sequence[str]) -> dict[str, Any]:
    """``data`` with every ``--set`` applied in order (mappings on the way are copied, not edited)."""
    for text in pairs:
        parts, value = parse(text)
        data = _set(data, parts, value, text.partition("=")[0])
    return data


def _set(node: Any, parts: list[str], value: Any, key: str) -> Any:
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if not head.lstrip("-").isdigit():
            raise RecipeError(f"--set {key}: {head!r} must be a list index (0 to {len(node) - 1})")
        index = int(head)
        if not 0 <= index < len(node):
            raise RecipeError(f"--set {key}: index {index} is past the end of a list of {len(node)}")
        out = list(node)
        out[index] = _set(node[index], rest, value, key)
        return out
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise RecipeError(f"--set {key}: cannot enter {head!r}: the value above it is {node!r}, not a mapping")
    return {**node, head: _set(node.get(head), rest, value, key)}
