"""``iqa recipes``, ``check``, ``upper-bound`` and ``demo``: finding recipes, their weights, and a first run.

Kept apart from ``cli.py`` (the scoring and evaluation commands); ``cli.py`` adds these to
the group. Imports stay light: models load only inside ``demo``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import IQAError

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Change one recipe field, e.g. scorers.0.params.device=cuda:1 (YAML value; repeatable).",
)


@click.command()
@click.option("--paths", is_flag=True, help="Also print each recipe's file.")
def recipes(paths: bool) -> None:
    """List the paper's recipes shipped with the package: NAME and description.

    Any command that takes a recipe accepts NAME (e.g. `iqa run -r llm_iqa`); a real
    file of that name wins.
    """
    from .catalog import listing

    rows = listing()
    width = max(len(r.name) for r in rows)
    for r in rows:
        click.echo(f"{r.name:<{width}}  {r.description}")
        if paths:
            click.echo(f"{'':<{width}}  {r.path}")


@click.command()
@click.argument("recipe")
@click.option("--local", "local_only", is_flag=True, help="Every model must be on this machine: never ask the Hub.")
@set_option
def check(recipe: str, local_only: bool, overrides: tuple[str, ...]) -> None:
    """Find every model RECIPE needs: a local path, the Hugging Face cache, or the Hub.

    One table for all of them; each missing one comes with the command that downloads it.
    Offline (HF_HUB_OFFLINE=1) or with --local the Hub is not contacted. Exit status:
    0 every model is here or downloadable, 2 some are missing.
    """
    from .recipe import resolve
    from .weights import locate

    resolved = resolve(recipe, overrides=overrides)
    components = [(f"segmenter {resolved.recipe.segmenter.name}", resolved.segmenter)]
    for spec, (label, scorer, _) in zip(resolved.recipe.scorers, resolved.scorers):
        components.append((f"scorer {label}" + (f" ({spec.name})" if label != spec.name else ""), scorer))
    rows = []
    for where, component in components:
        weights = getattr(component, "weights", None)  # optional: components without weights have none
        for w in weights() if weights else []:
            rows.append(locate(where, w, hub=not local_only))
    if not rows:
        click.echo(f"{recipe}: no component loads weights")
        return
    table = [("component", "model", "status", "")] + [(r.component, r.weights.name, r.state, r.detail) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo(("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3]).rstrip())
    missing = [r for r in rows if r.state == "missing"]
    if not missing:
        later = sum(r.state == "hub" for r in rows)
        found = "found the model" if len(rows) == 1 else f"found all {len(rows)} models"
        click.echo(f"\n{found}" + (f"; {later} will be downloaded on first use" if later else ""))
        return
    click.echo(f"\n{len(missing)} of {len(rows)} models missing.")
    download = [r for r in missing if r.weights.repo is not None]
    if download:
        click.echo("Where there is internet, run:")
        for r in download:
            click.echo(f"  {r.weights.download_command()}")
        click.echo(
            "They go to the Hugging Face cache (~/.cache/huggingface/hub, or $HF_HOME): copy it to this machine "
            "and run with HF_HUB_OFFLINE=1. Or add `--local-dir DIR` and set the recipe's model parameter to DIR."
        )
    for r in missing:
        if r.weights.repo is None:
            click.echo(f"Fix the path in the recipe: {r.weights.path} ({r.detail})")
    sys.exit(2)


def _type_name(annotation: object) -> str:
    """``int``, ``str | None``, ``Literal['a', 'b']``: a parameter's type as a user reads it."""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def describe_component(kind: str, name: str, installed: bool = True) -> list[str]:
    """The lines ``iqa plugins NAME`` prints: what the component is, where it comes from, its parameters.

    ``installed=False`` names what installs the packages it needs instead of whether they are
    installed here: the docs site prints these lines and must not depend on the machine that builds it."""
    from pydantic_core import PydanticUndefined

    from . import registry

    cls = registry.get(kind, name)
    entry = next((e for e in registry.entries(kind) if e.name == name), None)
    origin = f"[{entry.distribution}] {entry.target}" if entry else name
    lines = [f"{kind[:-1]} {name}  {origin}"]
    doc = (cls.__doc__ or "").strip()
    lines += [f"  {line.strip()}" if line.strip() else "" for line in doc.splitlines()]
    fields = cls.Params.model_fields
    if not fields:
        lines.append("  parameters: none")
    else:
        lines.append("  parameters:")
        rows = []
        for field, info in fields.items():
            if info.default is not PydanticUndefined:
                default = repr(info.default)
            elif info.default_factory is not None:
                default = repr(info.default_factory())  # type: ignore[call-arg]
            else:
                default = "(required)"
            rows.append((field, _type_name(info.annotation), default, info.description or ""))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for row in rows:
            lines.append("    " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
    if cls.requires:
        from .extras import install_hint, missing

        absent = missing(cls.requires) if installed else []
        state = f"missing {', '.join(absent)}: {install_hint(cls.requires, absent)}" if absent else "installed"
        if not installed:
            state = install_hint(cls.requires, cls.requires)
        lines.append(f"  needs: {', '.join(cls.requires)} ({state})")
    return lines


def describe(name: str) -> list[str]:
    """Every component called ``name``, of any kind; an error with suggestions if none is."""
    from . import registry

    kinds = [kind for kind in registry.KINDS if name in registry.available(kind)]
    if not kinds:
        known = sorted({n for kind in registry.KINDS for n in registry.available(kind)})
        import difflib

        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise IQAError(f"no component named {name!r}; {hint}`iqa plugins` lists them")
    out: list[str] = []
    for kind in kinds:
        out += describe_component(kind, name)
    return out


WARNING = "Random weights: every score below is meaningless. The demo shows what the commands do, not quality."


@click.command()
@click.option(
    "-o", "--out", type=click.Path(path_type=Path), default=Path("iqa-demo"), show_default=True, help="Demo folder."
)
@click.pass_context
def demo(ctx: click.Context, out: Path) -> None:
    """Try every step offline in about a minute: tiny random models, generated images.

    Builds a tiny SAM2 and a tiny Qwen2-VL with random weights, six images with graded blur
    and noise and a made-up MOS table, then runs `iqa run`, `iqa show` and `iqa eval` on them.
    """
    import time

    from .extras import EVAL, MODELS, SAM2, require

    require("iqa demo", {"torch": MODELS, "transformers": MODELS, "sam2": SAM2, "matplotlib": EVAL})
    from .demo import build, quiet

    quiet()
    click.echo(f"note: {WARNING}")
    start = time.perf_counter()
    files = build(out)
    click.echo(f"built tiny models, 6 images and {files.mos} in {out}/ ({time.perf_counter() - start:.1f} s)")
    first = files.images / "clean.png"
    steps = [
        ["run", "-r", files.recipe, files.images, "-o", out / "scores.csv", "--details"],
        ["show", first, "-r", files.recipe, "-o", out / "regions.png"],
        ["eval", "-r", files.recipe, "-d", f"csv={files.mos}", "-o", out / "eval"],
    ]
    group = ctx.find_root().command
    for args in steps:
        words = [str(a) for a in args]
        click.echo(f"\n$ iqa {' '.join(words)}")
        start = time.perf_counter()
        try:
            code = group.main(words, prog_name="iqa", standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        click.echo(f"({time.perf_counter() - start:.1f} s)")
        if code:
            raise IQAError(f"demo step `iqa {words[0]}` exited with status {code}")
    click.echo(f"\n{WARNING.replace('below', 'above')}")
    click.echo("Next: `iqa recipes`, `iqa check llm_iqa`, then `iqa run -r llm_iqa YOUR_IMAGES/`.")


def dataset_options_from(pairs: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` pairs -> {dataset: {key: value}}; values parsed as YAML scalars."""
    import yaml

    from .evaluation.datasets import resolve_name

    out: dict[str, dict[str, Any]] = {}
    for text in pairs:
        target, sep, value = text.partition("=")
        name, dot, key = target.partition(".")
        if not (sep and dot and name and key):
            raise IQAError(f"--dataset-option {text!r}: expected NAME.KEY=VALUE, e.g. koniq10k.mos_column=MOS_zscore")
        out.setdefault(resolve_name(name), {})[key] = yaml.safe_load(value)
    return out


@click.command(name="upper-bound")
@click.option("-d", "--dataset", "datasets", multiple=True, metavar="NAME=ROOT", help="A dataset (repeatable).")
@click.option("--csv", "csv_files", multiple=True, type=click.Path(path_type=Path), help="A CSV of MOS values.")
@click.option("--mos-column", default="mos", show_default=True, help="MOS column of --csv files.")
@click.option("--dataset-option", "dataset_options", multiple=True, metavar="NAME.KEY=VALUE")
@click.option("--levels", default="3,5,7,9", show_default=True, help="Comma-separated K values.")
@click.option("--rounding", type=click.Choice(["half_even", "half_up"]), default="half_even", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def upper_bound(
    datasets: tuple[str, ...],
    csv_files: tuple[Path, ...],
    mos_column: str,
    dataset_options: tuple[str, ...],
    levels: str,
    rounding: str,
    as_json: bool,
) -> None:
    """The paper's Table 1: the (SRCC+PLCC)/2 a K-level scorer could reach on a MOS."""
    from .evaluation.datasets import load_dataset
    from .evaluation.evaluate import DatasetSpec, dataset_labels, upper_bounds

    try:
        ks = [int(k) for k in levels.split(",") if k.strip()]
    except ValueError:
        raise IQAError(f"--levels {levels!r}: expected integers like 3,5,7,9") from None
    if not datasets and not csv_files:
        raise IQAError("give at least one --dataset NAME=ROOT or --csv FILE")
    options = dataset_options_from(dataset_options)
    mos: dict[str, list[float]] = {}
    specs = [DatasetSpec.parse(text, options) for text in datasets]
    for label, spec in zip(dataset_labels(specs), specs):
        mos[label] = [it.mos for it in spec.load(check_images=False)]
    for path in csv_files:
        items = load_dataset("csv", path, check_images=False, mos_column=mos_column, path_column=None)
        mos[str(path)] = [it.mos for it in items]
    rows = upper_bounds(mos, ks, rounding)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("dataset".ljust(24) + "n".rjust(7) + "".join(f"K={k}".rjust(8) for k in ks))
    for row in rows:
        click.echo(
            row["dataset"][:24].ljust(24)
            + str(row["n"]).rjust(7)
            + "".join(f"{row[f'K={k}']:.3f}".rjust(8) for k in ks)
        )
