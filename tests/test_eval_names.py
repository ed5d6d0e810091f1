"""`iqa eval` names recipes uniquely: two recipes never share a table row or a predictions file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_eval_cli import _csv_dataset, _write_recipe, dataset  # noqa: F401  (a fixture)

from iqa_core.cli import cli
from iqa_core.errors import IQAError
from iqa_core.evaluation.evaluate import recipe_names


def test_names_take_as_many_folders_as_tell_recipes_apart(tmp_path: Path) -> None:
    paths = [Path("a/x/r.yaml"), Path("b/x/r.yaml"), Path("b/x/s.yaml"), Path("c/y/s.yaml"), Path("t.yaml")]
    assert list(recipe_names(paths).values()) == ["a/x/r", "b/x/r", "x/s", "y/s", "t"]
    with pytest.raises(IQAError, match=r"recipe a/x/\.\./x/r\.yaml is given twice \(as a/x/r\.yaml\)"):
        recipe_names([Path("a/x/r.yaml"), Path("a/x/../x/r.yaml")])
    with pytest.raises(IQAError, match=r"recipes r\.yaml and r\.yml would share the name 'r'"):
        recipe_names([Path("r.yaml"), Path("r.yml")])
    with pytest.raises(IQAError, match=r"would share the name 'x_r'"):
        recipe_names([Path("a/x_r.yaml"), Path("b/x/r.yaml"), Path("c/r.yaml")])


def test_eval_of_recipes_with_one_folder_and_file_name(test_plugins, dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    for parent in ("a", "b"):
        (tmp_path / parent / "x").mkdir(parents=True)
    _write_recipe(tmp_path / "a" / "x" / "r.yaml")
    _write_recipe(tmp_path / "b" / "x" / "r.yaml", aggregate={"name": "mean"})
    out = tmp_path / "out"
    args = ["eval", "-r", tmp_path / "a" / "x" / "r.yaml", "-r", tmp_path / "b" / "x" / "r.yaml"]
    res = CliRunner().invoke(cli, [*map(str, args), *_csv_dataset(dataset), "-o", str(out), "--no-figures"])
    assert res.exit_code == 0, res.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [row["recipe"] for row in rows] == ["a/x/r", "b/x/r"]
    predictions = sorted((out / "predictions").iterdir())
    assert [p.name for p in predictions] == ["a_x_r_csv.csv", "b_x_r_csv.csv"]
    assert predictions[0].read_text() != predictions[1].read_text()  # mix_grained and mean: other scores
    again = CliRunner().invoke(cli, [*map(str, args[:3]), *map(str, args[1:3]), *_csv_dataset(dataset)])
    assert again.exit_code == 2 and "is given twice" in again.stderr


def test_two_datasets_of_one_adapter_get_their_own_rows(test_plugins, dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    r = _write_recipe(tmp_path / "bright.yaml")
    half = tmp_path / "half.csv"
    half.write_text("".join(dataset.read_text().splitlines(keepends=True)[:5]))  # header + 4 images
    args = [
        "eval",
        "-r",
        str(r),
        *_csv_dataset(dataset),
        "-d",
        f"csv={half}",
        "-o",
        str(tmp_path / "out"),
        "--no-figures",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.stderr
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["rows"]
    assert [(row["dataset"], row["n"]) for row in rows] == [("csv-mos", 8), ("csv-half", 4)]
    assert sorted(p.name for p in (tmp_path / "out" / "predictions").iterdir()) == [
        "bright_csv-half.csv",
        "bright_csv-mos.csv",
    ]
    again = CliRunner().invoke(cli, [*args[:3], *_csv_dataset(dataset), *_csv_dataset(dataset)[:2]])
    assert again.exit_code == 2 and f"--dataset csv={dataset}: given twice" in again.stderr
    (tmp_path / "other").mkdir()
    same_stem = tmp_path / "other" / dataset.name
    same_stem.write_text(dataset.read_text())
    again = CliRunner().invoke(cli, [*args[:3], *_csv_dataset(dataset), "-d", f"csv={same_stem}"])
    assert again.exit_code == 2 and "would share the label 'csv-mos': rename one" in again.stderr
