"""Results tables: ``results.json`` + ``results.md`` on disk, and the same table for a terminal.

A row is one (recipe, dataset) evaluation, e.g. ``{"recipe": "llm_iqa",
"dataset": "koniq10k", **metrics.correlations(pred, mos)}``. Tables follow
the paper's Table 2: one line per recipe, an SRCC/PLCC column pair per
dataset, datasets and recipes in first-seen order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..outputs import replacing

Row = Mapping[str, Any]
TABLE_METRICS = ("srcc", "plcc")


def table(rows: Sequence[Row], metrics: Sequence[str] = TABLE_METRICS) -> list[list[str]]:
    """Header line + one line per recipe, cells formatted to 3 decimals ("–" where absent)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    recipes = list(dict.fromkeys(r.get("recipe", "") for r in rows))
    cells = {(r.get("recipe", ""), r["dataset"]): r for r in rows}
    header = ["recipe"] + [f"{d} {m.upper()}" for d in datasets for m in metrics]
    body = [
        [recipe] + [_fmt(cells.get((recipe, d), {}).get(m)) for d in datasets for m in metrics] for recipe in recipes
    ]
    return [header, *body]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return "–" if value is None else str(value)


def render_text(rows: Sequence[Row], metrics: Sequence[str] = TABLE_METRICS) -> str:
    """The paper-style table and every metric per evaluation, as aligned text for the terminal."""
    return _aligned(table(rows, metrics)) + "\n\n" + _aligned(details(rows))


def _aligned(lines: list[list[str]]) -> str:
    widths = [max(map(len, column)) for column in zip(*lines, strict=True)]
    out = []
    for first, *rest in lines:
        right = [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        cells = [first.ljust(widths[0]), *right]
        out.append("  ".join(cells))
    return "\n".join(out)


DETAIL_COLUMNS = ("recipe", "dataset", "n", "n_failed", "srcc", "plcc", "plcc_fitted", "krcc", "rmse_fitted")


def details(rows: Sequence[Row]) -> list[list[str]]:
    """One line per (recipe, dataset) with every metric, for the report below the main table."""
    return [list(DETAIL_COLUMNS)] + [[_fmt(r.get(c)) for c in DETAIL_COLUMNS] for r in rows]


def _markdown_table(lines: list[list[str]]) -> list[str]:
    header, *body = lines
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|",
        *("| " + " | ".join(line) + " |" for line in body),
    ]


def render_markdown(rows: Sequence[Row], metrics: Sequence[str] = TABLE_METRICS, figures: Sequence[str] = ()) -> str:
    """The paper-style table, every metric per evaluation, then figures (PNG embedded)."""
    lines = _markdown_table(table(rows, metrics))
    lines += ["", "## All metrics", "", *_markdown_table(details(rows))]
    lines += [
        "",
        "n_failed images have no score and are left out of the correlations; "
        "plcc_fitted and rmse_fitted are after the 4-parameter logistic fit.",
    ]
    if figures:
        lines += ["", "## Figures", ""]
        for f in figures:
            name = Path(f).stem
            lines.append(f"![{name}]({f})" if f.endswith(".png") else f"- [{Path(f).name}]({f})")
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    """NaN/inf -> null (strict JSON), numpy scalars -> Python, Paths -> str."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value) if isinstance(value, Path) else value


def write_markdown_report(
    out_dir: str | Path,
    table_rows: Sequence[Row],
    figures: Sequence[str | Path] = (),
    metrics: Sequence[str] = TABLE_METRICS,
) -> list[Path]:
    """Write ``results.json`` (all rows, every metric) and ``results.md`` (the table).

    Figure paths are stored relative to ``out_dir`` so the report folder can
    be moved as a whole. Returns the two written paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rel = [Path(os.path.relpath(Path(f).resolve(), out.resolve())).as_posix() for f in figures]
    json_path, md_path = out / "results.json", out / "results.md"
    payload = {"rows": list(table_rows), "figures": rel}
    with replacing(json_path) as temp:
        temp.write_text(json.dumps(_json_safe(payload), indent=2) + "\n")
    with replacing(md_path) as temp:
        temp.write_text("# Results\n\n" + render_markdown(table_rows, metrics, rel))
    return [json_path, md_path]
