"""The ``iqa`` command line. Imports stay light: models load only inside ``run``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import IQAError


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IQAError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iqa")
def cli() -> None:
    """Training-free image quality assessment with multimodal LLMs."""


@cli.command()
@click.option("-r", "--recipe", "recipe_path", required=True, type=click.Path(path_type=Path), help="YAML recipe.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write .csv, .jsonl or .parquet (default: CSV to stdout).")
@click.option("--details", is_flag=True, help="Add per-region rows (bbox, area, scores).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default: the recipe's runtime.store).")
@click.option("--no-store", is_flag=True, help="Keep nothing between runs (an in-memory store).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def run(
    recipe_path: Path,
    inputs: tuple[str, ...],
    output: Path | None,
    details: bool,
    store: Path | None,
    no_store: bool,
    progress: bool | None,
) -> None:
    """Score INPUTS (files, folders, globs or list files) with a recipe.

    Exit status: 0 all scored, 1 some images failed (see the error column), 2 a usage error.
    """
    from .engine import Pipeline
    from .outputs import check_output_path, write_results
    from .recipe import resolve
    from .runner import run_pipeline

    if output is not None:
        check_output_path(output)
    resolved = resolve(recipe_path)
    if no_store:
        resolved.recipe.runtime.store = None
    elif store is not None:
        resolved.recipe.runtime.store = str(store)
    pipeline = Pipeline(resolved)
    show = sys.stderr.isatty() if progress is None else progress
    results = run_pipeline(pipeline, inputs, progress=show)
    written = write_results(results, pipeline.labels, output, details)
    failed = [r for r in results if r.error is not None]
    stats = pipeline.stats
    summary = (
        f"{len(results) - len(failed)} of {len(results)} images scored "
        f"({stats['results_cached']} from the store), {len(failed)} failed; "
        f"{stats['views_scored']} views scored in {stats['scorer_calls']} scorer calls"
    )
    if written:
        summary += f"; wrote {', '.join(map(str, written))}"
    click.echo(summary, err=True)
    for r in failed[:10]:
        click.echo(f"  failed: {r.error}", err=True)
    if len(failed) > 10:
        click.echo(f"  … and {len(failed) - 10} more (see the error column)", err=True)
    sys.exit(1 if failed else 0)


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(path_type=Path))
def validate(recipes: tuple[Path, ...]) -> None:
    """Check RECIPES (shape and every plugin's params) without loading weights."""
    from .recipe import resolve

    bad = 0
    for path in recipes:
        try:
            resolved = resolve(path)
        except IQAError as exc:
            click.echo(str(exc), err=True)
            bad += 1
            continue
        names = ", ".join(label for label, _, _ in resolved.scorers)
        click.echo(f"{path}: ok (segmenter {resolved.recipe.segmenter.name}; scorers {names})")
    if bad:
        sys.exit(2)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List installed components: name, kind, distribution, description."""
    from . import registry

    rows = []
    for kind in registry.KINDS:
        for entry in registry.entries(kind):
            try:
                description = entry.load().describe() if entry.distribution != "<in-process>" else ""
            except IQAError as exc:
                description = f"(cannot import: {exc})"
            rows.append(
                {"name": entry.name, "kind": kind[:-1], "distribution": entry.distribution, "description": description}
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        click.echo(f"{r['kind']:<10} {r['name']:<{width}}  {r['description']}  [{r['distribution']}]")


def main() -> None:
    from .plugins import manager

    manager().hook.iqa_register_commands(cli=cli)
    cli()
