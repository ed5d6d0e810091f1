"""``--set KEY.PATH=VALUE`` on every command that takes a recipe, validated as the edited recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helpers import write_images
from iqa_core import overrides
from iqa_core.cli import cli
from iqa_core.errors import RecipeError
from iqa_core.recipe import resolve

pytestmark = pytest.mark.usefixtures("test_plugins")


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_set_enters_list_indices_and_parses_yaml_values(recipe_file: Path) -> None:
    resolved = resolve(recipe_file, overrides=["scorers.0.params.sharpness=2.5", "runtime.chunk_images=3"])
    assert resolved.scorers[0][1].params.sharpness == 2.5
    assert resolved.recipe.runtime.chunk_images == 3
    assert yaml.safe_load(recipe_file.read_text())["runtime"]["chunk_images"] == 8  # the file is not edited


def test_set_adds_a_field_the_file_leaves_out(recipe_file: Path) -> None:
    resolved = resolve(recipe_file, overrides=["scorers.0.label=bright"])
    assert [label for label, _, _ in resolved.scorers] == ["bright"]


@pytest.mark.parametrize(
    ("pair", "says"),
    [
        ("scorers.0.params.sharpnes=2", "scorers[0].params.sharpnes: unknown field"),
        ("scorers.0.params.sharpness=sharp", "scorers[0].params.sharpness:"),
        ("runtime.chunk_images=0", "runtime.chunk_images:"),
        ("scorers.3.params.sharpness=2", "--set scorers.3.params.sharpness: index 3 is past the end of a list of 1"),
        ("scorers.x.name=a", "--set scorers.x.name: 'x' must be a list index"),
        ("decode.method=argmax", "--set decode.method: cannot enter 'method'"),
        ("no_equals_sign", "--set 'no_equals_sign': expected KEY.PATH=VALUE"),
    ],
)
def test_a_bad_key_or_value_is_one_line_naming_it(recipe_file: Path, pair: str, says: str) -> None:
    with pytest.raises(RecipeError) as err:
        resolve(recipe_file, overrides=[pair])
    assert says in str(err.value)
    res = invoke("validate", recipe_file, "--set", pair)
    assert res.exit_code == 2 and says in res.output and "Traceback" not in res.output


def test_apply_copies_rather_than_edits() -> None:
    data = {"scorers": [{"name": "a", "params": {}}]}
    out = overrides.apply(data, ["scorers.0.params.model=/w"])
    assert out["scorers"][0]["params"] == {"model": "/w"} and data["scorers"][0]["params"] == {}


def test_every_command_takes_set(tmp_path: Path, recipe_file: Path) -> None:
    images = write_images(tmp_path / "imgs", 2)
    bad = "scorers.0.params.sharpnes=2"
    res = invoke("run", "-r", recipe_file, images[0], "--set", "scorers.0.params.sharpness=3", "--no-store")
    assert res.exit_code == 0, res.output
    assert invoke("validate", recipe_file, "--set", "runtime.chunk_images=2").exit_code == 0
    for args in (
        ["run", "-r", recipe_file, images[0]],
        ["validate", recipe_file],
        ["show", images[0], "-r", recipe_file, "-o", tmp_path / "f.png"],
        ["check", recipe_file],
        ["eval", "-r", recipe_file, "-d", f"csv={tmp_path / 'mos.csv'}", "-o", tmp_path / "ev", "--no-figures"],
    ):
        res = invoke(*args, "--set", bad)
        assert res.exit_code == 2, (args[0], res.output)
        assert "scorers[0].params.sharpnes: unknown field" in res.output, (args[0], res.output)
