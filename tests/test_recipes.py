"""The shipped recipes: every file validates, and each says what the paper's table says.

Nothing here loads weights: ``resolve`` parses every component's params, and the
comparisons use the components' ``cache_key`` / ``prompt_key`` -- the identities the
store keys model outputs by -- so "these recipes share their model outputs" is checked
the way the engine decides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from iqa_core.catalog import RECIPES_DIR
from iqa_core.cli import cli
from iqa_core.recipe import Recipe, Resolved, read_recipe, resolve

RECIPES = RECIPES_DIR  # the packaged copy: what `iqa run -r llm_iqa` reads
ALL = sorted(RECIPES.rglob("*.yaml"))
T3 = RECIPES / "ablations" / "table3"
T4 = RECIPES / "ablations" / "table4"
T5 = RECIPES / "ablations" / "table5"

MPLUG = "mPLUG/mPLUG-Owl3-7B-240728"
JANUS = "deepseek-community/Janus-Pro-7B"
SAM_L = "facebook/sam2.1-hiera-large"
SAM_T = "facebook/sam2.1-hiera-tiny"

# Supplementary Table 2 (output_mode 'coco_rle' is an encoding choice, not a param).
TABLE2 = {
    "points_per_side": 8,
    "points_per_batch": 128,
    "pred_iou_thresh": 0.9,
    "stability_score_thresh": 0.8,
    "stability_score_offset": 0.7,
    "crop_n_layers": 0,
    "box_nms_thresh": 0.9,
    "crop_n_points_downscale_factor": 1.2,
    "min_mask_region_area": 1000,
    "use_m2m": False,
}
# sam2 1.1.0 SAM2AutomaticMaskGenerator defaults (Table 5 "Default").
SAM2_PACKAGE_DEFAULTS = {
    "points_per_side": 32,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.8,
    "stability_score_thresh": 0.95,
    "stability_score_offset": 1.0,
    "crop_n_layers": 0,
    "box_nms_thresh": 0.7,
    "crop_n_points_downscale_factor": 1,
    "min_mask_region_area": 0,
    "use_m2m": False,
}

# The paper's Table 3: (Aggregation, Segmentation, Standard) per experiment.
TABLE3 = {
    1: ("N/A", "Whole", "Without"),
    2: ("Area", "BBox", "Number"),
    3: ("Area", "BBox", "Sentence"),
    4: ("Mean", "BBox", "Word"),
    5: ("Area", "Mask", "Word"),
    6: ("N/A", "Whole", "Word"),
    7: ("Area", "BBox", "Word"),
    8: ("Area", "BBox+Whole", "Word"),
    9: ("Area+Ensemble", "BBox+Whole", "Word"),
}


def _shape(path: Path) -> Recipe:
    """Stage 1 only (the recipe's own schema): works before every plugin exists."""
    data, _ = read_recipe(path)
    return Recipe.model_validate(data)


def _resolved(path: Path) -> Resolved:
    return resolve(path)


def _rel(path: Path) -> str:
    return path.relative_to(RECIPES).as_posix()


def _without_description(path: Path) -> dict[str, Any]:
    dumped = _shape(path).model_dump(mode="json")
    dumped.pop("description")
    return dumped


def _identity(r: Resolved) -> dict[str, Any]:
    """What decides which stored outputs a recipe reuses (see Pipeline._view_key / segment)."""
    return {
        "segmenter": r.segmenter.cache_key(),
        "regions": {k: v for k, v in r.recipe.regions.model_dump().items() if k != "views"},
        "scorers": [(s.cache_key(), std.prompt_key()) for _, s, std in r.scorers],
    }


# ------------------------------------------------------------------ every file


def test_the_expected_files_are_shipped() -> None:
    names = {_rel(p) for p in ALL}
    expected = {"llm_iqa.yaml", "clip_iqa.yaml"}
    expected |= {f"ablations/table3/row{i}.yaml" for i in TABLE3}
    expected |= {f"ablations/table4/k{k}.yaml" for k in (3, 5, 7, 9)}
    expected |= {f"ablations/table5/{n}.yaml" for n in ("sam_default", "sam_tiny", "no_complement")}
    assert names == expected


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_recipe_resolves(path: Path) -> None:
    resolved = _resolved(path)
    assert resolved.recipe.description
    assert resolved.source == str(path)


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_recipe_header_says_what_it_reproduces(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = text.split("\n\n", 1)[0]
    assert header.startswith("# "), "each recipe opens with a comment header"
    assert "Table" in header, "the header names the paper table it reproduces"
    assert "trust_remote_code" not in text, "mPLUG-Owl3 is native: no recipe runs a model repository's code"


def test_cli_validate_accepts_every_recipe() -> None:
    paths = ALL
    result = CliRunner().invoke(cli, ["validate", *map(str, paths)])
    assert result.exit_code == 0, result.output
    oks = [line for line in result.stdout.splitlines() if line.endswith(")") and ": ok (" in line]
    assert len(oks) == len(paths)


def test_readme_lists_every_recipe() -> None:
    readme = (RECIPES / "README.md").read_text(encoding="utf-8")
    for path in ALL:
        rel = _rel(path)
        short = rel.replace("k3.yaml", "k{3,5,7,9}.yaml").replace("k5.yaml", "k{3,5,7,9}.yaml")
        short = short.replace("k7.yaml", "k{3,5,7,9}.yaml").replace("k9.yaml", "k{3,5,7,9}.yaml")
        assert f"`{short}`" in readme, rel


# ------------------------------------------------------------------ llm_iqa


def test_llm_iqa_is_the_papers_setting() -> None:
    r = resolve(RECIPES / "llm_iqa.yaml")
    rec = r.recipe
    # SAM2.1 hiera-large with every Table 2 value written in the file itself
    assert rec.segmenter.name == "sam2"
    assert rec.segmenter.params["model"] == SAM_L
    assert {k: rec.segmenter.params[k] for k in TABLE2} == TABLE2
    assert {k: getattr(r.segmenter.params, k) for k in TABLE2} == TABLE2
    # Algorithm 1 with the complement; bbox crops plus the whole image
    assert rec.regions.views == ["bbox", "whole"]
    assert rec.regions.complement is True
    assert 0 < rec.regions.min_area <= 0.05
    # 7-word standard for both models, argmax decoding
    assert (rec.standard.name, r.standard.params.levels) == ("word", 7)
    assert r.standard.labels == tuple("1234567")
    assert "7: Perfect, 6: Excellent, 5: Good, 4: Fair, 3: Bad, 2: Poor, 1: Very Bad" in r.standard.system
    assert rec.decode == "argmax"
    # the two MLLMs, both native (no remote code)
    assert [(s.name, s.params["model"]) for s in rec.scorers] == [
        ("mplug_owl3", MPLUG),
        ("janus_pro", JANUS),
    ]
    assert "trust_remote_code" not in rec.scorers[0].params
    assert all(std is r.standard for _, _, std in r.scorers)
    # mix-grained λ=1 with area-weighted local scores, mean ensemble
    assert rec.aggregate.name == "mix_grained"
    assert (r.aggregate.params.lam, r.aggregate.params.local) == (1.0, "area")
    assert rec.ensemble.name == "ensemble" and r.ensemble.params.weights is None


def test_llm_iqa_header_explains_t() -> None:
    header = (RECIPES / "llm_iqa.yaml").read_text(encoding="utf-8").split("\ndescription:")[0]
    assert "does NOT give" in header and "min_area" in header


def test_row9_is_llm_iqa() -> None:
    assert _without_description(T3 / "row9.yaml") == _without_description(RECIPES / "llm_iqa.yaml")


# ------------------------------------------------------------------ clip_iqa


def test_clip_iqa_recipe() -> None:
    r = resolve(RECIPES / "clip_iqa.yaml")
    assert r.recipe.segmenter.name == "whole" and r.recipe.regions.views == ["whole"]
    [(label, scorer, _)] = r.scorers
    assert label == "clip_iqa"
    p = scorer.params
    assert (p.model, p.pretrained, p.mode) == ("RN50", "openai", "antonym")
    assert p.antonyms == [("Bad photo.", "Good photo.")] and p.dtype == "float32"
    assert r.recipe.decode == "expected"


# ------------------------------------------------------------------ Table 3


def table3_row(rec: Recipe) -> tuple[str, str, str]:
    """Read a recipe back as Table 3's (Aggregation, Segmentation, Standard)."""
    views = rec.regions.views
    segmentation = {
        ("whole",): "Whole",
        ("bbox",): "BBox",
        ("mask",): "Mask",
        ("bbox", "whole"): "BBox+Whole",
    }[tuple(views)]
    if views == ["whole"]:
        aggregation = "N/A"
    else:
        agg = rec.aggregate
        local = agg.params.get("local", "area") if agg.name == "mix_grained" else agg.name
        assert agg.name != "mix_grained" or agg.params.get("lam", 1.0) == 1.0
        aggregation = {"area": "Area", "mean": "Mean"}[local]
    if len(rec.scorers) > 1:
        aggregation += "+Ensemble"
    standard = {"free": "Without", "number": "Number", "sentence": "Sentence", "word": "Word"}[rec.standard.name]
    return aggregation, segmentation, standard


@pytest.mark.parametrize("row", TABLE3)
def test_table3_row_matches_the_paper(row: int) -> None:
    rec = _shape(T3 / f"row{row}.yaml")
    assert table3_row(rec) == TABLE3[row]
    models = [s.params["model"] for s in rec.scorers]
    assert models == ([MPLUG, JANUS] if row == 9 else [MPLUG])
    assert all("trust_remote_code" not in s.params for s in rec.scorers)
    assert rec.decode == ("expected" if row == 1 else "argmax")  # row 1: the generated number
    if rec.regions.views != ["whole"]:
        assert rec.segmenter.params["model"] == SAM_L
        assert {k: rec.segmenter.params[k] for k in TABLE2} == TABLE2
    else:
        assert rec.segmenter.name == "whole"
    if rec.standard.name != "free":
        assert rec.standard.params == {"levels": 7}


def test_table3_row1_generates_a_free_answer() -> None:
    rec = _shape(T3 / "row1.yaml")
    assert rec.standard.name == "free"
    assert rec.scorers[0].params["answer"] == "generate"
    assert rec.scorers[0].params["max_new_tokens"] >= 4  # room for e.g. "5.73"
    assert rec.decode == "expected"  # returns the generated number, not the nearest level


def test_table3_rows_4_and_7_differ_only_in_aggregation() -> None:
    a, b = _without_description(T3 / "row4.yaml"), _without_description(T3 / "row7.yaml")
    assert (a.pop("aggregate")["name"], b.pop("aggregate")["name"]) == ("mean", "area")
    assert a == b
    assert _identity(resolve(T3 / "row4.yaml")) == _identity(resolve(T3 / "row7.yaml"))


@pytest.mark.parametrize("row", [2, 3, 5, 8])
def test_table3_sam_rows_share_row7_masks_and_regions(row: int) -> None:
    """Rows on SAM2 reuse row 7's stored masks; same standard -> same stored view scores."""
    base, other = _identity(resolve(T3 / "row7.yaml")), _identity(resolve(T3 / f"row{row}.yaml"))
    assert other["segmenter"] == base["segmenter"] and other["regions"] == base["regions"]
    same_prompt = row in (5, 8)
    assert (other["scorers"] == base["scorers"]) is same_prompt


def test_table3_whole_row_shares_the_scorer_with_row8_and_row9() -> None:
    whole = resolve(T3 / "row6.yaml").scorers[0]
    for path in (T3 / "row8.yaml", T3 / "row9.yaml", RECIPES / "llm_iqa.yaml"):
        first = resolve(path).scorers[0]
        assert (whole[1].cache_key(), whole[2].prompt_key()) == (
            first[1].cache_key(),
            first[2].prompt_key(),
        )


def test_table3_row9_adds_janus_to_row8() -> None:
    a, b = _without_description(T3 / "row8.yaml"), _without_description(T3 / "row9.yaml")
    janus = b["scorers"].pop()
    assert janus["name"] == "janus_pro" and janus["params"]["model"] == JANUS
    assert a == b


# ------------------------------------------------------------------ Table 4


def test_table4_files_differ_only_in_k() -> None:
    dumps = {k: _without_description(T4 / f"k{k}.yaml") for k in (3, 5, 7, 9)}
    for k, d in dumps.items():
        assert d["standard"] == {"name": "word", "params": {"levels": k}}
        d.pop("standard")
    assert dumps[3] == dumps[5] == dumps[7] == dumps[9]
    assert _without_description(T4 / "k7.yaml") == _without_description(T3 / "row8.yaml")


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_table4_k_resolves_to_k_words(k: int) -> None:
    r = resolve(T4 / f"k{k}.yaml")
    assert r.standard.values == tuple(float(v) for v in range(1, k + 1))
    assert table3_row(r.recipe) == TABLE3[8]


# ------------------------------------------------------------------ Table 5


def _diff(a: Any, b: Any, where: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(set(a) | set(b)):
            out.update(_diff(a.get(key), b.get(key), f"{where}.{key}" if where else key))
        return out
    return {} if a == b else {where: (a, b)}


def test_table5_variants_differ_from_row8_only_where_the_paper_says() -> None:
    row8 = _without_description(T3 / "row8.yaml")
    tiny = _diff(row8, _without_description(T5 / "sam_tiny.yaml"))
    assert tiny == {"segmenter.params.model": (SAM_L, SAM_T)}
    no_comp = _diff(row8, _without_description(T5 / "no_complement.yaml"))
    assert no_comp == {"regions.complement": (True, False)}
    default = _diff(row8, _without_description(T5 / "sam_default.yaml"))
    assert set(default) <= {f"segmenter.params.{k}" for k in TABLE2}
    assert {k.split(".")[-1]: new for k, (_, new) in default.items()} == {
        k: v for k, v in SAM2_PACKAGE_DEFAULTS.items() if v != TABLE2[k]
    }


def test_table5_default_is_the_sam2_package_default() -> None:
    """The values written in sam_default.yaml are the installed sam2 generator's defaults."""
    pytest.importorskip("sam2")
    import inspect

    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    signature = inspect.signature(SAM2AutomaticMaskGenerator.__init__).parameters
    params = resolve(T5 / "sam_default.yaml").segmenter.params
    for name in SAM2_PACKAGE_DEFAULTS:
        assert getattr(params, name) == signature[name].default, name


def test_table5_no_complement_reuses_row8_scores() -> None:
    a, b = resolve(T3 / "row8.yaml"), resolve(T5 / "no_complement.yaml")
    assert a.segmenter.cache_key() == b.segmenter.cache_key()
    assert [(s.cache_key(), t.prompt_key()) for _, s, t in a.scorers] == [
        (s.cache_key(), t.prompt_key()) for _, s, t in b.scorers
    ]


# ------------------------------------------------------------------ consistency


def test_all_ablations_share_one_t_and_one_view_side() -> None:
    for path in ALL:
        regions = _shape(path).regions
        assert (regions.min_area, regions.min_view_side) == (0.01, 32), _rel(path)


def test_every_table2_sam_block_is_identical() -> None:
    """Recipes on SAM2-L with Table 2 params produce one segmenter identity (one set of masks)."""
    keys = {}
    for path in ALL:
        seg = _shape(path).segmenter
        if (
            seg.name == "sam2"
            and seg.params.get("model") == SAM_L
            and _rel(path) != "ablations/table5/sam_default.yaml"
        ):
            keys[_rel(path)] = resolve(path).segmenter.cache_key()
    assert len(keys) >= 10
    assert len(set(keys.values())) == 1, keys
