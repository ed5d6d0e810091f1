"""`iqa eval` / sweeps / `iqa upper-bound` / `iqa show` from the command line, on fixture data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helpers import recipe, write_images
from iqa_core.cli import cli
from iqa_core.evaluation.metrics import discretization_bound


def _write_recipe(path: Path, **overrides) -> Path:
    data = recipe(store=None, **overrides)
    data.pop("runtime")
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A generic-CSV dataset: 8 images whose MOS follows their brightness, plus the CSV."""
    images = write_images(tmp_path / "imgs", 8)
    table = tmp_path / "mos.csv"
    with table.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "score"])
        for i, p in enumerate(images):
            w.writerow([f"imgs/{p.name}", 10 + 5 * i + (i % 3)])
    return table


def _csv_dataset(table: Path) -> list[str]:
    """``-d csv=TABLE`` with the fixture's column names."""
    return [
        "-d",
        f"csv={table}",
        "--dataset-option",
        "csv.path_column=file",
        "--dataset-option",
        "csv.mos_column=score",
    ]


def _eval(args: list[str]) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["eval", *args])
    return res.exit_code, res.stdout, res.stderr


def test_eval_writes_table_predictions_figures(test_plugins, dataset: Path, tmp_path: Path) -> None:
    r = _write_recipe(tmp_path / "bright.yaml")
    out = tmp_path / "out"
    code, stdout, stderr = _eval(
        [
            "-r",
            str(r),
            *_csv_dataset(dataset),
            "-o",
            str(out),
            "--store",
            str(tmp_path / "s.sqlite"),
        ]
    )
    assert code == 0, stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["n"] == 8 and rows[0]["n_failed"] == 0
    assert rows[0]["srcc"] > 0.9  # brightness tracks the MOS by construction
    for key in ("plcc", "plcc_fitted", "krcc", "rmse_fitted"):
        assert isinstance(rows[0][key], float)
    assert "bright" in stdout and "csv" in stdout
    assert "| bright |" in (out / "results.md").read_text()
    assert (out / "figures" / "bright_csv_scatter.png").stat().st_size > 0
    assert (out / "figures" / "bright_csv_scatter.svg").stat().st_size > 0
    preds = list(csv.DictReader((out / "predictions" / "bright_csv.csv").open()))
    assert len(preds) == 8 and all(float(p["score"]) >= 1 for p in preds)


def test_sweep_shares_model_outputs_across_recipes(test_plugins, dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "sweep").mkdir()
    _write_recipe(tmp_path / "sweep" / "mix.yaml")
    _write_recipe(tmp_path / "sweep" / "area.yaml", aggregate={"name": "area"})
    _write_recipe(tmp_path / "sweep" / "mean.yaml", aggregate={"name": "mean"})
    out = tmp_path / "out"
    code, _, stderr = _eval(
        [
            "-r",
            str(tmp_path / "sweep"),
            *_csv_dataset(dataset),
            "-o",
            str(out),
            "--no-store",
            "--no-figures",
        ]
    )
    assert code == 0, stderr
    rows = {row["recipe"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"area", "mean", "mix"}
    calls = [rows[name]["scorer_calls"] for name in ("area", "mean", "mix")]  # sorted order of the sweep
    assert calls[0] > 0 and calls[1:] == [0, 0]
    assert len(test_plugins.views) == len(set(test_plugins.views))  # no view scored twice


def test_eval_after_run_calls_no_model(test_plugins, dataset: Path, tmp_path: Path) -> None:
    r = _write_recipe(tmp_path / "bright.yaml")
    store = tmp_path / "s.sqlite"
    run = CliRunner().invoke(
        cli, ["run", "-r", str(r), str(tmp_path / "imgs"), "--store", str(store), "-o", str(tmp_path / "o.csv")]
    )
    assert run.exit_code == 0, run.stderr
    seen = len(test_plugins.views)
    code, _, stderr = _eval(
        [
            "-r",
            str(r),
            *_csv_dataset(dataset),
            "-o",
            str(tmp_path / "out"),
            "--store",
            str(store),
            "--no-figures",
        ]
    )
    assert code == 0, stderr
    assert len(test_plugins.views) == seen
    assert json.loads((tmp_path / "out" / "results.json").read_text())["rows"][0]["scorer_calls"] == 0


@pytest.mark.parametrize("column", [None, "MOS_zscore"])
def test_eval_reads_koniq_layout(test_plugins, tmp_path: Path, column: str | None) -> None:
    """MOS (1-5) by default; --dataset-option koniq10k.mos_column=MOS_zscore picks the 0-100 column."""
    root = tmp_path / "koniq"
    images = write_images(root / "1024x768", 5)
    with (root / "koniq10k_scores_and_distributions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_name", "c1", "MOS", "SD", "MOS_zscore"])
        for i, p in enumerate(images):
            w.writerow([p.name, 0, 1 + 0.5 * i, 0.1, 20 + 10 * i])
    r = _write_recipe(tmp_path / "bright.yaml")
    code, stdout, stderr = _eval(
        [
            "-r",
            str(r),
            "-d",
            f"KonIQ-10k={root}",
            "--limit",
            "4",
            "-o",
            str(tmp_path / "o"),
            "--no-store",
            "--no-figures",
            *(["--dataset-option", f"koniq10k.mos_column={column}"] if column else []),
        ]
    )
    assert code == 0, stderr
    row = json.loads((tmp_path / "o" / "results.json").read_text())["rows"][0]
    assert row["dataset"] == "koniq10k" and row["n"] == 4
    (predictions,) = (tmp_path / "o" / "predictions").glob("*.csv")
    with predictions.open() as fh:
        mos = sorted(float(r["mos"]) for r in csv.DictReader(fh))
    assert mos == ([20.0, 30.0, 40.0, 50.0] if column else [1.0, 1.5, 2.0, 2.5])


def test_eval_reports_bad_arguments(tmp_path: Path) -> None:
    code, _, stderr = _eval(["-r", "nope.yaml", "-d", "koniq10k"])
    assert code == 2 and "expected NAME=ROOT" in stderr
    code, _, stderr = _eval(["-r", "nope.yaml", "-d", f"koniq={tmp_path}"])
    assert code == 2 and "koniq10k" in stderr  # did you mean


def test_upper_bound_matches_the_metric(tmp_path: Path) -> None:
    mos = [12.0, 55.5, 31.0, 78.25, 90.0, 44.0, 67.0, 23.5, 81.0, 5.0]
    table = tmp_path / "mos.csv"
    table.write_text("mos\n" + "\n".join(map(str, mos)) + "\n")
    res = CliRunner().invoke(cli, ["upper-bound", "--csv", str(table), "--levels", "3,7", "--json"])
    assert res.exit_code == 0, res.stderr
    (row,) = json.loads(res.stdout)
    assert row["n"] == 10
    assert row["K=3"] == pytest.approx(discretization_bound(mos, 3))
    assert row["K=7"] == pytest.approx(discretization_bound(mos, 7))
    assert row["K=3"] < row["K=7"] <= 1.0
    text = CliRunner().invoke(cli, ["upper-bound", "--csv", str(table)]).stdout
    assert "K=9" in text and str(table)[:24] in text


def test_show_draws_regions_and_reads_the_store(test_plugins, tmp_path: Path) -> None:
    (image,) = write_images(tmp_path / "imgs", 1)
    r = _write_recipe(tmp_path / "bright.yaml")
    store = tmp_path / "s.sqlite"
    missing = CliRunner().invoke(cli, ["show", str(image), "-r", str(r), "--store", str(store), "--from-store"])
    assert missing.exit_code == 2 and "no stored result" in missing.stderr
    res = CliRunner().invoke(
        cli, ["show", str(image), "-r", str(r), "--store", str(store), "-o", str(tmp_path / "f.png")]
    )
    assert res.exit_code == 0, res.stderr
    assert "3 regions" in res.stdout
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "f.svg").stat().st_size > 0
    seen = len(test_plugins.views)
    again = CliRunner().invoke(
        cli, ["show", str(image), "-r", str(r), "--store", str(store), "--from-store", "-o", str(tmp_path / "g.png")]
    )
    assert again.exit_code == 0 and len(test_plugins.views) == seen
