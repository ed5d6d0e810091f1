"""Recipes: two-stage validation, and every error reading ``FILE: field.path: message``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import BrightnessScorer, QuadrantSegmenter, recipe
from iqa_core.errors import RecipeError
from iqa_core.recipe import Recipe, resolve
from iqa_plugins.aggregators.ensemble import EnsembleAggregator
from iqa_plugins.aggregators.regions import MixGrainedAggregator
from iqa_plugins.segmenters.whole import WholeImage
from iqa_plugins.standards.levels import CustomStandard, SentenceStandard, WordStandard

pytestmark = pytest.mark.usefixtures("test_plugins")

GOOD = """\
description: test
segmenter: {name: test_quadrants}
regions: {min_area: 0.02, views: [bbox, whole]}
standard: {name: word, params: {levels: 5}}
scorers:
  - name: test_brightness
    params: {batch_size: 2, sharpness: 2.0}
  - name: test_brightness
    label: second
    standard: {name: sentence, params: {levels: 7}}
decode: expected
aggregate: {name: mix_grained, params: {lam: 0.5}}
runtime: {store: null}
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(source) -> str:
    with pytest.raises(RecipeError) as info:
        resolve(source)
    return str(info.value)


def test_good_recipe_resolves_every_component(tmp_path: Path) -> None:
    r = resolve(write(tmp_path, GOOD))
    assert r.source.endswith("r.yaml")
    assert isinstance(r.segmenter, QuadrantSegmenter)
    assert isinstance(r.standard, WordStandard) and r.standard.k == 5
    (l1, s1, std1), (l2, s2, std2) = r.scorers
    assert (l1, l2) == ("test_brightness", "second")
    assert isinstance(s1, BrightnessScorer) and s1.params.sharpness == 2.0 and s1.batch_size == 2
    assert std1 is r.standard and isinstance(std2, SentenceStandard) and std2.k == 7
    assert isinstance(r.aggregate, MixGrainedAggregator) and r.aggregate.params.lam == 0.5
    assert isinstance(r.ensemble, EnsembleAggregator)
    assert r.recipe.regions.min_area == 0.02 and r.recipe.decode == "expected"


def test_defaults_are_the_paper_method() -> None:
    r = resolve({"scorers": [{"name": "test_brightness"}], "runtime": {"store": None}})
    assert isinstance(r.segmenter, WholeImage)
    assert isinstance(r.standard, WordStandard) and r.standard.k == 7
    assert isinstance(r.aggregate, MixGrainedAggregator) and r.aggregate.params.lam == 1.0
    assert r.recipe.decode == "argmax" and r.recipe.regions.views == ["bbox", "whole"]


def test_defaults_are_not_shared_between_recipes() -> None:
    a = Recipe.model_validate({"scorers": [{"name": "x"}]})
    a.runtime.store = None  # the CLI's --no-store does this
    b = Recipe.model_validate({"scorers": [{"name": "x"}]})
    assert b.runtime.store == ".iqa/store.sqlite"


def test_custom_levels_from_the_recipe() -> None:
    levels = [{"value": 1, "label": "1", "description": "bad"}, {"value": 2, "label": "2", "description": "good"}]
    r = resolve(recipe(None, standard={"name": "custom", "params": {"levels": levels}}))
    assert isinstance(r.standard, CustomStandard) and r.standard.values == (1.0, 2.0)
    dup = [{"value": 1, "label": "1"}, {"value": 1, "label": "2"}]
    msg = error_of(recipe(None, standard={"name": "custom", "params": {"levels": dup}}))
    assert msg.startswith("<recipe>: standard.params: ") and "distinct" in msg


@pytest.mark.parametrize(
    "old, new, field",
    [
        ("scorers:", "scorerz:", "scorerz: unknown field"),
        ("{min_area: 0.02,", "{min_aera: 0.02,", "regions.min_aera: unknown field"),
        ("decode: expected", "decode: expectd", "decode: Input should be 'argmax' or 'expected'"),
        ("{lam: 0.5}", "{lam: 0.5, lamda: 1}", "aggregate.params.lamda: unknown field"),
    ],
)
def test_misspelled_field_names_file_and_path(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = write(tmp_path, GOOD.replace(old, new, 1))
    msg = error_of(path)
    assert msg.startswith(f"{path}: "), msg
    assert f"{path}: {field}" in msg


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("min_area: 0.02", 'min_area: "big"'))
    msg = error_of(path)
    assert msg.startswith(f"{path}: regions.min_area: ") and "number" in msg
    msg = error_of(write(tmp_path, GOOD.replace("min_area: 0.02", "min_area: 2")))
    assert "regions.min_area: " in msg and "less than or equal to 1" in msg
    msg = error_of(write(tmp_path, GOOD.replace("views: [bbox, whole]", "views: [bbox, mask]")))
    assert "regions.views: choose one local view mode" in msg
    msg = error_of(write(tmp_path, GOOD.replace("views: [bbox, whole]", "views: [bbox, crop]")))
    assert "regions.views[1]: " in msg


def test_plugin_param_error_has_the_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("sharpness: 2.0}", "sharpness: 2.0, xyz: 1}"))
    msg = error_of(path)
    assert msg == f"{path}: scorers[0].params.xyz: unknown field"
    bad_type = GOOD.replace("batch_size: 2,", "batch_size: many,")
    assert error_of(write(tmp_path, bad_type)).startswith(f"{path}: scorers[0].params.batch_size: ")
    nested = GOOD.replace("params: {levels: 7}", "params: {levels: 4}")
    assert error_of(write(tmp_path, nested)).startswith(f"{path}: scorers[1].standard.params.levels: ")


def test_every_problem_of_a_stage_is_listed(tmp_path: Path) -> None:
    text = GOOD.replace("{min_area: 0.02,", "{min_aera: 0.02,").replace("decode: expected", "decode: x")
    lines = error_of(write(tmp_path, text)).splitlines()
    assert len(lines) == 2 and all(ln.startswith(str(tmp_path / "r.yaml") + ": ") for ln in lines)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "scorers:\n  - name: a\n    params: {batch_size: 2\nregions: [\n")
    msg = error_of(path)
    assert msg.startswith(f"{path}: line ") and "invalid YAML" in msg


def test_yaml_is_safe_loaded(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "!!python/object/apply:os.system ['echo hi']\n"))
    assert "invalid YAML" in msg


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert msg.startswith(f"{path}: ") and "mapping" in msg


def test_missing_recipe_file(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path / "nope.yaml")


def test_unknown_plugin_with_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("name: mix_grained", "name: mix_grainde"))
    msg = error_of(path)
    assert msg.startswith(f"{path}: aggregate.name: unknown aggregator 'mix_grainde'")
    assert "did you mean 'mix_grained'" in msg and "available: " in msg
    msg = error_of(
        write(tmp_path, GOOD.replace("- name: test_brightness\n    label", "- name: test_brightnes\n    label"))
    )
    assert "scorers[1].name: unknown scorer 'test_brightnes'; did you mean 'test_brightness'" in msg


def test_ensemble_weights_are_checked_at_validation(tmp_path: Path) -> None:
    for weights in ("[1, -1]", "[0, 0]"):
        msg = error_of(write(tmp_path, GOOD + f"ensemble: {{name: ensemble, params: {{weights: {weights}}}}}\n"))
        assert "ensemble.params.weights: weights must be non-negative with a positive sum" in msg
    resolve(write(tmp_path, GOOD + "ensemble: {name: ensemble, params: {weights: [0, 1]}}\n"))


def test_aggregator_in_the_wrong_stage(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD.replace("name: mix_grained, params: {lam: 0.5}", "name: ensemble")))
    assert "aggregate.name: 'ensemble' combines scorers" in msg
    msg = error_of(write(tmp_path, GOOD + "ensemble: {name: area}\n"))
    assert "ensemble.name: 'area' combines regions" in msg


def test_mix_grained_needs_whole(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("views: [bbox, whole]", "views: [bbox]"))
    msg = error_of(path)
    assert msg.startswith(f"{path}: regions.views: ") and "'whole'" in msg
    ok = GOOD.replace("views: [bbox, whole]", "views: [bbox]").replace(
        "name: mix_grained, params: {lam: 0.5}", "name: area"
    )
    resolve(write(tmp_path, ok))


def test_duplicate_scorer_labels(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    label: second\n", ""))
    assert error_of(path) == (
        f"{path}: scorers: scorers share the label(s) ['test_brightness']: give each a distinct 'label'"
    )


def test_dict_recipes_are_named_recipe() -> None:
    msg = error_of(recipe(None, scorerz=[]))
    assert msg.startswith("<recipe>: ")


def test_ensemble_weights_must_match_the_scorers(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, GOOD + "ensemble: {name: ensemble, params: {weights: [1, 2, 3]}}\n"))
    assert "ensemble.params: 3 weights for" in msg


def test_scorer_labels_may_not_shadow_output_columns() -> None:
    with pytest.raises(RecipeError, match="scorers: .*would overwrite output columns"):
        resolve(recipe(None, scorers=[{"name": "test_brightness", "label": "score"}]))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("ensemble: {name: ensemble, params: {weights: [.nan, 1]}}\n", "ensemble.params.weights[0]"),
        ("ensemble: {name: ensemble, params: {weights: [1, .inf]}}\n", "ensemble.params.weights[1]"),
        ("aggregate: {name: mix_grained, params: {lam: .inf}}\n", "aggregate.params.lam"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path: Path, extra: str, field: str) -> None:
    """These validated and then scored nan or inf with exit 0."""
    text = GOOD.replace("aggregate: {name: mix_grained, params: {lam: 0.5}}\n", "") + extra
    assert f"{field}: Input should be a finite number" in error_of(write(tmp_path, text))


def test_a_custom_level_value_must_be_finite() -> None:
    levels = [{"value": 1, "label": "1"}, {"value": float("inf"), "label": "2"}]
    msg = error_of(recipe(None, standard={"name": "custom", "params": {"levels": levels}}))
    assert "standard.params.levels[1].value: Input should be a finite number" in msg


def test_mixed_level_ranges_with_native_scale_fail_at_validation(tmp_path: Path) -> None:
    """GOOD's scorers use K=5 and K=7: 'native' cannot average them; this used to fail every image."""
    msg = error_of(write(tmp_path, GOOD + "ensemble: {name: ensemble, params: {scale: native}}\n"))
    assert "ensemble.params: scale 'native' needs scorers with one level range, got [(1.0, 5.0), (1.0, 7.0)]" in msg
    resolve(write(tmp_path, GOOD + "ensemble: {name: ensemble, params: {scale: unit}}\n"))


def test_utf16_recipes_are_read_and_other_encodings_named(tmp_path: Path) -> None:
    path = tmp_path / "r16.yaml"
    path.write_bytes(GOOD.encode("utf-16"))  # with its BOM, as Windows editors write it
    assert resolve(path).standard.k == 5
    path.write_bytes(GOOD.replace("description: test", "description: caf\xe9").encode("latin-1"))
    assert error_of(path) == f"{path}: not UTF-8 text (byte 0xe9 at offset 16); save the recipe as UTF-8"


def test_deep_nesting_is_a_recipe_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a: " + "[" * 100_000)
    assert error_of(path) == f"{path}: invalid YAML: nested too deeply"


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("decode: expected\n", "decode: expected\ndecode: argmax\n"))
    msg = error_of(path)
    assert msg == f"{path}: line 12, column 1: invalid YAML: duplicate key 'decode' (also on line 11; keep one)"
    nested = write(tmp_path, GOOD.replace("{batch_size: 2, sharpness: 2.0}", "{batch_size: 2, batch_size: 3}"))
    assert "duplicate key 'batch_size'" in error_of(nested)
    merged = "base: &b {levels: 5}\nstandard: {<<: *b, levels: 7, name: word}\n"
    assert resolve_data(write(tmp_path, merged)) == {"levels": 7, "name": "word"}


def resolve_data(path: Path) -> dict:
    from iqa_core.recipe import read_recipe

    return read_recipe(path)[0]["standard"]


def test_a_flood_of_unknown_keys_is_listed_briefly(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "".join(f"junk{i}: 1\n" for i in range(1000)))
    lines = error_of(path).splitlines()
    assert len(lines) == 21 and lines[0] == f"{path}: junk0: unknown field"
    assert lines[-1] == f"{path}: … and 980 more errors"
