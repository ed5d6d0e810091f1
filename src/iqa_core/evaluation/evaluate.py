"""Evaluation against human scores: recipes x datasets -> metrics, predictions, figures, report.

Several recipes over one dataset is a sweep (the paper's Table 3): they share
one store, so segmentations and view scores they have in common are computed
once, and recipes differing only in aggregation make no scorer call after the first.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import catalog, following
from ..api import ImageResult
from ..errors import IQAError
from ..executors import run_pipeline
from ..outputs import replacing
from ..pipeline import Pipeline
from ..recipe import resolve
from ..store import Store
from .datasets import Item, load_dataset, resolve_name
from .metrics import MetricError, correlations


@dataclass
class DatasetSpec:
    """``NAME=ROOT`` from the command line, with adapter options."""

    name: str
    root: Path
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> DatasetSpec:
        name, sep, root = text.partition("=")
        if not sep or not name or not root:
            raise IQAError(f"--dataset {text!r}: expected NAME=ROOT, e.g. koniq10k=/data/koniq")
        key = resolve_name(name)
        return cls(key, Path(root), dict((options or {}).get(key, {})))

    def load(self, limit: int | None = None, check_images: bool = True) -> list[Item]:
        return load_dataset(self.name, self.root, limit, check_images=check_images, **self.options)


def recipe_names(paths: Sequence[Path]) -> dict[Path, str]:
    """Short unique names: the file stem, or as many parent folders before it as tell it apart.

    Names label table rows and prediction files, so two recipes must never share one: the
    same file given twice, or names that stay equal (``r.yaml`` beside ``r.yml``), are usage errors.
    """
    full = [p.resolve() for p in paths]
    for i, path in enumerate(full):
        if path in full[:i]:
            raise IQAError(f"recipe {paths[i]} is given twice (as {paths[full.index(path)]})")
    keys = [(*p.parent.parts, p.stem) for p in full]
    names: dict[Path, str] = {}
    for path, key in zip(paths, keys):
        n = next((n for n in range(1, len(key) + 1) if [k[-n:] for k in keys].count(key[-n:]) == 1), None)
        if n is None:  # same folder and stem, other suffix
            clash = next(p for p, k in zip(paths, keys) if k == key and p != path)
            raise IQAError(f"recipes {path} and {clash} would share the name {key[-1]!r}: rename one")
        names[path] = "/".join(key[-n:])
    slugs = [_slug(name) for name in names.values()]
    for path, name in names.items():
        if slugs.count(_slug(name)) > 1:
            clash = next(p for p, other in names.items() if p != path and _slug(other) == _slug(name))
            raise IQAError(f"recipes {path} and {clash} would share the name {_slug(name)!r}: rename one")
    return names


def dataset_labels(specs: Sequence[DatasetSpec]) -> list[str]:
    """Table and file labels: the adapter name, plus the root's stem where two share a name
    (``-d csv=a.csv -d csv=b.csv`` -> csv-a, csv-b); the same dataset twice is a usage error."""
    names = [spec.name for spec in specs]
    labels = [n if names.count(n) == 1 else f"{n}-{spec.root.stem}" for n, spec in zip(names, specs)]
    for i, label in enumerate(labels):
        if label in labels[:i]:
            this, other = specs[i], specs[labels.index(label)]
            if this.root.resolve() == other.root.resolve():
                raise IQAError(f"--dataset {this.name}={this.root}: given twice")
            raise IQAError(
                f"--dataset {this.name}={this.root} and {other.name}={other.root} would share the label "
                f"{label!r}: rename one"
            )
    return labels


def _slug(name: str) -> str:
    """A recipe name as part of a file name."""
    return name.replace("/", "_")


def expand_recipes(inputs: Sequence[Path]) -> list[Path]:
    """Recipe files, and folders of them (recursive, sorted)."""
    out: list[Path] = []
    for path in inputs:
        if not path.exists():
            path = catalog.find(str(path)) or path  # a packaged recipe or folder, e.g. ablations/table3
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*.y*ml") if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    if not out:
        raise IQAError(f"no recipes found in: {', '.join(map(str, inputs))}")
    return out


def metrics_row(recipe: str, dataset: str, items: Sequence[Item], results: Sequence[ImageResult]) -> dict[str, Any]:
    """One table row: n, n_failed and the correlations of the final (and each scorer's) score."""
    mos = [it.mos for it in items]
    row: dict[str, Any] = {"recipe": recipe, "dataset": dataset, "n": len(items)}
    row["n_failed"] = sum(r.error is not None for r in results)
    final = [math.nan if r.score is None else r.score for r in results]
    try:
        stats = correlations(final, mos)
    except MetricError as exc:
        row["error"] = str(exc)
        return row
    row.update({k: v for k, v in stats.items() if k != "n"})
    labels = list(dict.fromkeys(label for r in results for label in r.scorer_scores))
    if len(labels) > 1:
        row["per_scorer"] = {}
        for label in labels:
            scores = [r.scorer_scores.get(label, math.nan) for r in results]
            try:
                s = correlations(scores, mos)
                row["per_scorer"][label] = {"srcc": s["srcc"], "plcc": s["plcc"]}
            except MetricError as exc:
                row["per_scorer"][label] = {"error": str(exc)}
    return row


def write_predictions(path: Path, items: Sequence[Item], results: Sequence[ImageResult]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as temp, temp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "mos", "score", "n_regions", "error"])
        for it, r in zip(items, results):
            writer.writerow([it.path, it.mos, "" if r.score is None else r.score, r.n_regions, r.error or ""])
    return path


@dataclass
class Evaluation:
    """Everything ``iqa eval`` produced: table rows and written files."""

    rows: list[dict[str, Any]]
    files: list[Path]
    repaired: int = 0  # damaged store rows that were recomputed
    stores: list[str] = field(default_factory=list)


def evaluate(
    recipes: Sequence[Path],
    datasets: Sequence[DatasetSpec],
    out_dir: Path,
    limit: int | None = None,
    store: str | None | bool = True,
    figures: bool = True,
    progress: bool = False,
    overrides: Sequence[str] = (),
) -> Evaluation:
    """Score every dataset with every recipe and compare with the MOS.

    ``store``: True = each recipe's own ``runtime.store`` (shared when equal),
    a path = one store for all, None/False = in memory (shared within this call).
    ``overrides`` (``--set``) apply to every recipe.
    """
    from . import figures as figs
    from .report import write_markdown_report

    names = recipe_names(list(recipes))
    resolved = [(names[p], resolve(p, overrides=overrides)) for p in recipes]
    stores: dict[str | None, Store] = {}

    def store_for(path: str | None) -> Store:
        if path not in stores:
            stores[path] = Store(path)
        return stores[path]

    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    repaired = 0
    loaded = [(label, spec.load(limit)) for label, spec in zip(dataset_labels(datasets), datasets)]
    for dataset, items in loaded:
        paths = [str(it.path) for it in items]
        for name, res in resolved:
            target = res.recipe.runtime.store if store is True else (None if store in (None, False) else str(store))
            res.recipe.runtime.store = target
            pipeline = Pipeline(res, store_for(target))
            results = run_pipeline(pipeline, paths, progress=progress)
            row = metrics_row(name, dataset, items, results)
            row["scorer_calls"] = pipeline.stats["scorer_calls"]
            row["prompt_following"] = following.fractions(pipeline.stats)
            repaired += pipeline.stats["store_rows_repaired"]
            rows.append(row)
            slug = f"{_slug(name)}_{dataset}"
            files.append(write_predictions(out_dir / "predictions" / f"{slug}.csv", items, results))
            if figures and "error" not in row:
                pred = [math.nan if r.score is None else r.score for r in results]
                files += figs.scatter_with_marginals(
                    pred,
                    [it.mos for it in items],
                    out_dir / "figures" / f"{slug}_scatter",
                    title=f"{name} on {dataset}",
                    caveat=res.recipe.caveat,
                )
                counts = [r.n_regions for r in results if r.error is None]
                if any(counts):
                    regions = out_dir / "figures" / f"{slug}_regions"
                    files += figs.regions_histogram(counts, regions, caveat=res.recipe.caveat)
    figure_files = [f for f in files if f.suffix == ".png"]
    files += write_markdown_report(out_dir, rows, figure_files)
    for s in stores.values():
        s.close()
    return Evaluation(rows, files, repaired, [s.path for s in stores.values()])


def upper_bounds(
    mos_by_dataset: Mapping[str, Sequence[float]], levels: Sequence[int], rounding: str
) -> list[dict[str, Any]]:
    """The paper's Table 1: one row per dataset, one (SRCC+PLCC)/2 bound per K."""
    from .metrics import discretization_bound

    return [
        {"dataset": name, "n": len(mos), **{f"K={k}": discretization_bound(mos, k, rounding) for k in levels}}  # type: ignore[arg-type]
        for name, mos in mos_by_dataset.items()
    ]
