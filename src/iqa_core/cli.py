"""The ``iqa`` command line. Imports stay light: models load only inside ``run``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__, commands
from .errors import IQAError

INTERRUPTED = 130  # the shell's code for SIGINT; exit 1 means "some images failed"


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit code 2 (3, 130: see ``run``), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IQAError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iqa")
def cli() -> None:
    """Training-free image quality assessment with multimodal LLMs."""


_allow_import = click.option(
    "--allow-import",
    is_flag=True,
    help="Let 'module:Class' component names import modules outside installed distributions "
    "(runs their code; as runtime.allow_imports: true).",
)


@cli.command()
@click.option("-r", "--recipe", "recipe_path", required=True, type=click.Path(path_type=Path), help="YAML recipe.")
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write .csv, .jsonl or .parquet (default: CSV to stdout)."
)
@click.option("--details", is_flag=True, help="Add per-region rows (bbox, area, scores).")
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default: the recipe's runtime.store).")
@click.option("--no-store", is_flag=True, help="Keep nothing between runs (an in-memory store).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@_allow_import
@commands.set_option
def run(
    recipe_path: Path,
    inputs: tuple[str, ...],
    output: Path | None,
    details: bool,
    store: Path | None,
    no_store: bool,
    progress: bool | None,
    allow_import: bool,
    overrides: tuple[str, ...],
) -> None:
    """Score INPUTS (files, folders, globs, list files, .csv/.jsonl/.parquet manifests, URIs) with a recipe.

    Rows are written as images finish; a manifest's other columns are carried into them.

    Exit status: 0 all scored, 1 some images failed (see the error column), 2 a usage error
    (or the store cannot be used), 3 a device worker died, 130 interrupted (a rerun resumes).
    """
    from . import following
    from .executors import iter_rows
    from .outputs import IMAGE_COLUMNS, ResultWriter, check_output_path
    from .pipeline import Pipeline
    from .recipe import resolve
    from .sources import manifest_columns

    if output is not None:
        check_output_path(output)
    elif details:
        raise IQAError("--details needs -o/--output (the regions go to a file beside it, or into the JSONL)")
    resolved = resolve(recipe_path, allow_import, overrides)
    if no_store:
        resolved.recipe.runtime.store = None
    elif store is not None:
        resolved.recipe.runtime.store = str(store)
    pipeline = Pipeline(resolved)
    columns = manifest_columns(inputs, [*IMAGE_COLUMNS, *pipeline.labels])
    show = sys.stderr.isatty() if progress is None else progress
    stored = pipeline.store.count("results")
    failed: list[str] = []  # the first ten messages; the rest are counted
    n = n_failed = 0
    writer = ResultWriter(output, pipeline.labels, details, columns)
    try:
        for result, row in iter_rows(pipeline, inputs, progress=show):
            writer.write(result, row)
            n += 1
            if result.error is not None:
                n_failed += 1
                if len(failed) < 10:
                    failed.append(result.error)
    except KeyboardInterrupt:
        click.echo(f"interrupted: {_stored_since(pipeline, stored)}", err=True)
        sys.exit(INTERRUPTED)
    finally:
        written = writer.close()
    stats = pipeline.stats
    summary = (
        f"{n - n_failed} of {n} images scored, {n_failed} failed; "
        f"{stats['results_cached']} results and {stats['views_cached']} view scores came from the "
        f"store, {stats['views_scored']} views scored in {stats['scorer_calls']} scorer calls"
    )
    if written:
        summary += f"; wrote {', '.join(map(str, written))}"
    click.echo(summary, err=True)
    shares = following.fractions(stats)
    if shares:
        listed = ", ".join(f"{scorer} {share:.0%}" for scorer, share in shares.items())
        click.echo(f"  prompt-following (views whose top token was a level label): {listed}", err=True)
    for line in following.warnings(shares):
        click.echo(f"  {line}", err=True)
    _warn_repaired(stats["store_rows_repaired"], pipeline.store.path)
    for error in failed:
        click.echo(f"  failed: {error}", err=True)
    if n_failed > 10:
        click.echo(f"  … and {n_failed - 10} more (see the error column)", err=True)
    sys.exit(1 if n_failed else 0)


def _stored_since(pipeline: Any, before: int) -> str:
    """What an interrupted run leaves for the rerun."""
    if pipeline.store.path == ":memory:":
        return "nothing is kept without a store file; a rerun starts over"
    try:
        return f"{pipeline.store.count('results') - before} results stored; rerun to resume"
    except IQAError:
        return "what was scored is in the store; rerun to resume"


def _warn_repaired(n: int, store: str) -> None:
    if n:
        click.echo(
            f"  warning: {n} damaged rows of store {store} (unreadable, non-finite or inconsistent) "
            "were recomputed and overwritten",
            err=True,
        )


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(path_type=Path))
@_allow_import
@commands.set_option
def validate(recipes: tuple[Path, ...], allow_import: bool, overrides: tuple[str, ...]) -> None:
    """Check RECIPES (shape and every plugin's params) without loading weights.

    Every file is checked and reported; exit status 2 if any failed.
    """
    from .recipe import resolve

    bad = 0
    for path in recipes:
        try:
            resolved = resolve(path, allow_import, overrides)
        except IQAError as exc:
            click.echo(str(exc), err=True)
            bad += 1
            continue
        except Exception as exc:  # a plugin's own validator failing: still report the other files
            click.echo(f"{path}: could not be validated: {type(exc).__name__}: {exc}", err=True)
            bad += 1
            continue
        names = ", ".join(label for label, _, _ in resolved.scorers)
        click.echo(f"{path}: ok (segmenter {resolved.recipe.segmenter.name}; scorers {names})")
    if bad:
        click.echo(f"{bad} of {len(recipes)} recipes failed validation", err=True)
        sys.exit(2)


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(name: str | None, as_json: bool) -> None:
    """List installed components: name, kind, distribution, description.

    With NAME: that component's description and parameters (type, default, description).
    """
    from . import registry

    if name is not None:
        from .commands import describe

        click.echo("\n".join(describe(name)))
        return
    rows = []
    for kind in registry.KINDS:
        for entry in registry.entries(kind):
            try:
                in_process = entry.distribution == "<in-process>"
                description = (registry.get(kind, entry.name) if in_process else entry.load()).describe()
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


@cli.command(name="eval")
@click.option(
    "-r",
    "--recipe",
    "recipes",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Recipe file or folder of recipes; repeat for a sweep.",
)
@click.option(
    "-d",
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    metavar="NAME=ROOT",
    help="koniq10k, spaq, livec, kadid10k, agiqa3k, or csv=FILE; repeatable.",
)
@click.option(
    "--dataset-option",
    "dataset_options",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Adapter option, e.g. csv.mos_column=dmos.",
)
@click.option("--limit", type=click.IntRange(min=1), help="A deterministic subset of N images per dataset.")
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("iqa-eval"),
    show_default=True,
    help="Folder for results.json, results.md, predictions and figures.",
)
@click.option("--store", type=click.Path(path_type=Path), help="One SQLite store for every recipe.")
@click.option("--no-store", is_flag=True, help="Keep model outputs in memory only.")
@click.option("--figures/--no-figures", default=True, show_default=True)
@click.option("--progress/--no-progress", default=None)
@commands.set_option
def eval_cmd(
    recipes: tuple[Path, ...],
    datasets: tuple[str, ...],
    dataset_options: tuple[str, ...],
    limit: int | None,
    out_dir: Path,
    store: Path | None,
    no_store: bool,
    figures: bool,
    progress: bool | None,
    overrides: tuple[str, ...],
) -> None:
    """Score datasets with recipes and report SRCC/PLCC/KRCC against the MOS (Table 2/3 style)."""
    from . import following
    from .evaluation.evaluate import DatasetSpec, evaluate, expand_recipes
    from .evaluation.report import render_text
    from .extras import EVAL, require

    if figures:
        require("iqa eval's figures (--no-figures skips them)", {"matplotlib": EVAL})
    options = commands.dataset_options_from(dataset_options)
    specs = [DatasetSpec.parse(text, options) for text in datasets]
    target: str | bool | None = None if no_store else (str(store) if store else True)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        result = evaluate(expand_recipes(list(recipes)), specs, out_dir, limit, target, figures, show, overrides)
    except KeyboardInterrupt:
        kept = "nothing is kept with --no-store" if no_store else "what was scored is in the store; rerun to resume"
        click.echo(f"interrupted: {kept}", err=True)
        sys.exit(INTERRUPTED)
    click.echo(render_text(result.rows))
    for row in result.rows:
        for line in following.warnings(row.get("prompt_following", {})):
            click.echo(f"{row['recipe']} on {row['dataset']}: {line}", err=True)
        if row.get("n_failed"):
            click.echo(
                f"{row['recipe']} on {row['dataset']}: {row['n_failed']} images failed (see the predictions CSV)",
                err=True,
            )
        if row.get("error"):
            click.echo(f"{row['recipe']} on {row['dataset']}: {row['error']}", err=True)
    _warn_repaired(result.repaired, ", ".join(result.stores))
    click.echo(f"wrote {out_dir / 'results.md'} and {out_dir / 'results.json'}", err=True)


@cli.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-r", "--recipe", "recipe_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("regions.png"),
    show_default=True,
    help="Figure path; a PNG and an SVG are written.",
)
@click.option("--store", type=click.Path(path_type=Path), help="SQLite store (default: the recipe's).")
@click.option("--from-store", is_flag=True, help="Only draw a stored result; never run a model.")
@_allow_import
@commands.set_option
def show(
    image: Path,
    recipe_path: Path,
    output: Path,
    store: Path | None,
    from_store: bool,
    allow_import: bool,
    overrides: tuple[str, ...],
) -> None:
    """Figure 6: IMAGE with its regions, each region's score and area, and the final score."""
    from .evaluation.figures import plural, regions_figure
    from .extras import EVAL, require
    from .pipeline import Pipeline
    from .recipe import resolve

    require("iqa show", {"matplotlib": EVAL})
    resolved = resolve(recipe_path, allow_import, overrides)
    if store is not None:
        resolved.recipe.runtime.store = str(store)
    pipeline = Pipeline(resolved)
    if from_store:
        result = pipeline.cached_result(str(image))
        if result is None:
            raise IQAError(f"{image}: no stored result for recipe {recipe_path} in {pipeline.store.path}")
    else:
        result = pipeline.score_many([image])[0]
    if result.error is not None:
        raise IQAError(result.error)
    written = regions_figure(image, result, output, caveat=resolved.recipe.caveat)
    regions = plural(result.n_regions, "region") if result.n_regions else "the whole image only (no local region)"
    click.echo(f"{image}: score {result.score:.3f}, {regions}; wrote {', '.join(map(str, written))}")


cli.add_command(commands.recipes)
cli.add_command(commands.check)
cli.add_command(commands.upper_bound)
cli.add_command(commands.demo)


def main() -> None:
    from .plugins import manager

    manager().hook.iqa_register_commands(cli=cli)
    cli()
