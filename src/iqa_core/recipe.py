"""YAML recipes -> validated pydantic models, in two stages.

Stage 1 checks the recipe's own shape. Stage 2 resolves every named component
through the registry and validates its ``params`` against the plugin's
``Params`` model. No weights are loaded. Every error reads
``FILE: field.path: message``.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
)

from . import catalog, extras, registry
from .api import Aggregator, Component, ViewMode
from .decode import DecodeMethod
from .errors import IQAError, RecipeError
from .images import DEFAULT_MAX_PIXELS
from .overrides import apply as apply_overrides

# output columns (outputs.py) a scorer label must not overwrite
RESERVED_LABELS = frozenset(
    {"path", "score", "n_regions", "error", "region", "regions", "kind", "area", "x0", "y0", "x1", "y1"}
)


MAX_LISTED_ERRORS = 20  # a recipe with a million unknown keys gets a readable message, not a million lines


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentSpec(_Model):
    """A component by registered name (or ``module:Class``) and its parameters."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ScorerSpec(ComponentSpec):
    label: str | None = Field(None, description="column name in outputs; defaults to name")
    standard: ComponentSpec | None = Field(None, description="overrides the recipe's standard")


class RegionsSpec(_Model):
    min_area: float = Field(0.01, ge=0.0, le=1.0, description="Algorithm 1's t, as a fraction")
    complement: bool = True
    views: list[ViewMode] = Field(default_factory=lambda: ["bbox", "whole"], min_length=1)
    min_view_side: int = Field(32, ge=0, description="thinner crops are upscaled to this")
    prescale: bool | int = Field(
        False,
        description="true: shrink views to each scorer's input size and decode JPEGs reduced to what the segmenter "
        "and scorers need; an integer also keeps a JPEG's long side at least that. Changes pixels; off by default",
    )

    @field_validator("prescale", mode="before")
    @classmethod
    def _prescale(cls, value: Any) -> bool | int:
        if isinstance(value, bool) or (isinstance(value, int) and value >= 1):
            return value
        raise ValueError(f"give false, true or a long side in pixels (an integer >= 1), not {value!r}")

    @model_serializer(mode="wrap")
    def _prescale_off_unsaid(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Off, ``prescale`` is left out of the dump: the recipe key (a hash of it) and so every
        stored result stay what they were before the option existed."""
        data = handler(self)
        if data.get("prescale") is False:
            del data["prescale"]
        return data

    @field_validator("views")
    @classmethod
    def _one_local_mode(cls, views: list[ViewMode]) -> list[ViewMode]:
        if len(set(views)) != len(views):
            raise ValueError("views are listed twice")
        if {"bbox", "mask"} <= set(views):
            raise ValueError("choose one local view mode: 'bbox' or 'mask', not both")
        return views


class RuntimeSpec(_Model):
    store: str | None = Field(".iqa/store.sqlite", description="SQLite cache; null = in memory")
    chunk_images: int = Field(32, ge=1, description="at most this many images wait for their views to be batched")
    batch_lookahead: int = Field(
        4, ge=1, description="views are sorted by size over this many batches, then batched (less padding)"
    )
    workers: int = Field(4, ge=0, description="threads reading and decoding images ahead")
    max_inflight_mb: float = Field(512, gt=0, description="decoded pixels in flight, MiB; a larger image runs alone")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    executor: Literal["local", "ray"] = "local"
    devices: list[str] | None = Field(None, description="one worker per device, e.g. [cuda:0, cuda:1]")
    ray_address: str | None = Field(None, description="an existing cluster; default: start a local one")
    ray_actors: int | None = Field(None, ge=1, description="actors per stage; default: one per GPU, or 1")
    allow_imports: bool = Field(
        False, description="let component names 'module:Class' import modules outside installed distributions"
    )


class Recipe(_Model):
    description: str = ""
    caveat: str = Field(
        "",
        description="drawn on every figure made with this recipe (iqa show, iqa eval), e.g. the demo's "
        "'random weights: not a measurement'; not part of the results' identity",
    )
    segmenter: ComponentSpec = ComponentSpec(name="whole")
    regions: RegionsSpec = RegionsSpec()
    standard: ComponentSpec = ComponentSpec(name="word", params={"levels": 7})
    scorers: list[ScorerSpec] = Field(min_length=1)
    decode: DecodeMethod = "argmax"
    aggregate: ComponentSpec = ComponentSpec(name="mix_grained")
    ensemble: ComponentSpec = ComponentSpec(name="ensemble")
    runtime: RuntimeSpec = RuntimeSpec()

    @field_validator("scorers")
    @classmethod
    def _labels_unique(cls, scorers: list[ScorerSpec]) -> list[ScorerSpec]:
        labels = [s.label or s.name for s in scorers]
        reserved = sorted(set(labels) & RESERVED_LABELS)
        if reserved:
            raise ValueError(f"scorer label(s) {reserved} would overwrite output columns: choose another 'label'")
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"scorers share the label(s) {dupes}: give each a distinct 'label'")
        return scorers


@dataclass
class Resolved:
    """A validated recipe with every component class resolved and params parsed."""

    recipe: Recipe
    source: str
    segmenter: Component
    standard: Component
    scorers: list[tuple[str, Component, Component]]  # (label, scorer, its standard)
    aggregate: Component
    ensemble: Component


def read_recipe(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Recipe data and a name for messages (the file path, or '<recipe>' for a dict).

    A path that does not exist may name a packaged recipe (``llm_iqa``, ``ablations/table3/row8``).
    """
    if isinstance(source, Mapping):
        return dict(source), "<recipe>"
    path = Path(source)
    if not path.exists():
        path = catalog.find(str(source)) or path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found, nor a packaged recipe; {catalog.suggest(path)}") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror or exc}") from None
    data = parse_yaml(_decode(raw, path), path)
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping, got {type(data).__name__}")
    return data, str(path)


def _decode(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without a BOM), or UTF-16/32 with a BOM, as YAML 1.1 allows."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32")):
        if raw.startswith(bom):
            return _decode_as(raw, encoding, path)
    for bom in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if raw.startswith(bom):
            return _decode_as(raw, "utf-16", path)
    return _decode_as(raw, "utf-8-sig", path)


def _decode_as(raw: bytes, encoding: str, path: Path) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise RecipeError(
            f"{path}: not {encoding.removesuffix('-sig').upper()} text (byte {raw[exc.start]:#04x} at offset "
            f"{exc.start}); save the recipe as UTF-8"
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges may be overridden, by YAML's own rules
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable: the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (also on line {first}; keep one)", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, where: str | Path) -> Any:
    """Safe YAML with one-line errors: no tags that build objects, no duplicate keys."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"{where}: {at}invalid YAML: {problem}") from None
    except RecursionError:
        raise RecipeError(f"{where}: invalid YAML: nested too deeply") from None


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(recipe)"


def _raise_validation(source: str, prefix: tuple[Any, ...], exc: ValidationError) -> None:
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{source}: {_loc(prefix + loc)}: {msg}")
    if len(lines) > MAX_LISTED_ERRORS:
        lines[MAX_LISTED_ERRORS:] = [f"{source}: … and {len(lines) - MAX_LISTED_ERRORS} more errors"]
    raise RecipeError("\n".join(lines)) from None


def _instantiate(source: str, kind: str, spec: ComponentSpec, where: tuple[Any, ...], allow_imports: bool) -> Component:
    try:
        cls = registry.get(kind, spec.name, allow_import=allow_imports)
    except IQAError as exc:
        raise RecipeError(f"{source}: {_loc(where + ('name',))}: {exc}") from None
    try:
        return cls(cls.Params.model_validate(spec.params))
    except ValidationError as exc:
        _raise_validation(source, where + ("params",), exc)
        raise  # unreachable: _raise_validation always raises


def _check_packages(source: str, components: list[tuple[str, str, Component]]) -> None:
    """Every optional package the recipe's components import, checked before any work starts."""
    lines = []
    for where, name, comp in components:
        absent = extras.missing(comp.requires)
        if absent:
            hint = extras.install_hint(comp.requires, absent)
            lines.append(f"{source}: {where}.name: {name} needs {', '.join(absent)}: {hint}")
    if lines:
        raise extras.MissingPackage("\n".join(dict.fromkeys(lines)))


def resolve(
    source: str | Path | Mapping[str, Any], allow_imports: bool = False, overrides: Sequence[str] = ()
) -> Resolved:
    """Validate both stages; raise :class:`RecipeError` listing every problem found.

    ``allow_imports`` (the CLI's ``--allow-import``) does what ``runtime.allow_imports: true``
    does: component names ``module:Class`` may import modules outside installed distributions.
    ``overrides`` are ``--set KEY.PATH=VALUE`` edits, applied before validation.
    """
    data, name = read_recipe(source)
    if overrides:
        data = apply_overrides(data, overrides)
        name = f"{name} (with --set {', '.join(overrides)})"
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        _raise_validation(name, (), exc)
    if allow_imports:
        recipe.runtime.allow_imports = True
    imports = recipe.runtime.allow_imports

    def make(kind: str, spec: ComponentSpec, *where: Any) -> Component:
        return _instantiate(name, kind, spec, where, imports)

    segmenter = make("segmenters", recipe.segmenter, "segmenter")
    standard = make("standards", recipe.standard, "standard")
    scorers = []
    for i, spec in enumerate(recipe.scorers):
        scorer = make("scorers", spec, "scorers", i)
        own = spec.standard
        std = make("standards", own, "scorers", i, "standard") if own else standard
        scorers.append((spec.label or spec.name, scorer, std))
    aggregate = make("aggregators", recipe.aggregate, "aggregate")
    ensemble = make("aggregators", recipe.ensemble, "ensemble")
    for field, comp, stage in (("aggregate", aggregate, "regions"), ("ensemble", ensemble, "scorers")):
        assert isinstance(comp, Aggregator)
        if comp.stage != stage:
            raise RecipeError(
                f"{name}: {field}.name: {getattr(recipe, field).name!r} combines {comp.stage}, "
                f"but '{field}' needs an aggregator of {stage}"
            )
    ranges = []
    for _, scorer, std in scorers:
        values = scorer.level_values(std)  # type: ignore[attr-defined]
        ranges.append((min(values), max(values)))
    try:
        ensemble.check(ranges)  # type: ignore[attr-defined]
    except ValueError as exc:
        raise RecipeError(f"{name}: ensemble.params: {exc}") from None
    if getattr(aggregate, "needs_global", False) and "whole" not in recipe.regions.views:
        raise RecipeError(f"{name}: regions.views: {recipe.aggregate.name} needs 'whole' among the views")
    used = [("segmenter", recipe.segmenter.name, segmenter)]
    used += [(f"scorers[{i}]", spec.name, s) for i, (spec, (_, s, _)) in enumerate(zip(recipe.scorers, scorers))]
    _check_packages(name, used)
    return Resolved(recipe, name, segmenter, standard, scorers, aggregate, ensemble)
