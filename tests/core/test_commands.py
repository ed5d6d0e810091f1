"""`iqa recipes`, recipes by name, `iqa check` and `iqa plugins NAME`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner

from iqa_core import catalog, load_recipe, weights
from iqa_core.cli import cli
from iqa_core.errors import RecipeError
from iqa_core.recipe import resolve

pytest.importorskip("transformers")  # the hf_vlm scorer's package is checked at validation


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


# ---------------------------------------------------------------- recipes by name


def test_iqa_recipes_lists_every_packaged_recipe_with_its_description() -> None:
    res = invoke("recipes")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert len(lines) == len(list(catalog.RECIPES_DIR.rglob("*.yaml"))) == 18
    assert lines[0].startswith("clip_iqa ") and lines[1].startswith("llm_iqa ")
    assert any(line.startswith("ablations/table3/row8 ") and "Table 3 row 8" in line for line in lines)
    assert "LLM-IQA (paper)" in lines[1]


@pytest.mark.parametrize("name", ["llm_iqa", "llm_iqa.yaml", "recipes/llm_iqa.yaml"])
def test_bare_names_resolve_to_the_packaged_recipe(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here: as after `pip install`
    assert resolve(name).source == str(catalog.RECIPES_DIR / "llm_iqa.yaml")
    assert resolve("ablations/table3/row8").recipe.description.startswith("Table 3 row 8")


def test_load_recipe_by_name_and_a_real_file_wins(tmp_path: Path, monkeypatch, test_plugins) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_recipe("llm_iqa").resolved.recipe.scorers[0].name == "mplug_owl3"
    own = {"scorers": [{"name": "test_brightness"}], "runtime": {"store": None}}
    Path("llm_iqa.yaml").write_text(yaml.safe_dump(own))
    assert resolve("llm_iqa.yaml").recipe.scorers[0].name == "test_brightness"  # the file here wins
    assert resolve("llm_iqa").recipe.scorers[0].name == "mplug_owl3"  # no file called llm_iqa


def test_unknown_name_suggests_and_points_to_iqa_recipes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RecipeError, match=r"llm_iqaa: recipe file not found.*did you mean 'llm_iqa'.*iqa recipes"):
        resolve("llm_iqaa")
    res = invoke("validate", "ablations/table3/row10")
    assert res.exit_code == 2 and "did you mean 'ablations/table3/row1'" in res.stderr


def test_eval_expands_a_packaged_folder(tmp_path: Path, monkeypatch) -> None:
    from iqa_core.evaluation.evaluate import expand_recipes

    monkeypatch.chdir(tmp_path)
    found = expand_recipes([Path("ablations/table4")])
    assert [p.name for p in found] == ["k3.yaml", "k5.yaml", "k7.yaml", "k9.yaml"]


# ---------------------------------------------------------------- iqa check


def fake_cache(root: Path, repo: str, files: dict[str, str]) -> None:
    """The Hugging Face cache layout: refs/main -> snapshots/<commit>/<files>."""
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    snapshot = folder / "snapshots" / "abc123"
    for name, text in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(text)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    index = json.dumps({"weight_map": {"a": "model-1.safetensors", "b": "model-2.safetensors"}})
    fake_cache(cache, "org/whole", {"config.json": "{}", "model.safetensors": ""})
    fake_cache(
        cache,
        "org/sharded",
        {
            "config.json": "{}",
            "model.safetensors.index.json": index,
            "model-1.safetensors": "",
            "model-2.safetensors": "",
        },
    )
    fake_cache(
        cache, "org/half", {"config.json": "{}", "model.safetensors.index.json": index, "model-1.safetensors": ""}
    )
    return cache


def check_recipe(tmp_path: Path, models: list[str]) -> Path:
    data = {
        "scorers": [{"name": "hf_vlm", "label": f"m{i}", "params": {"model": m}} for i, m in enumerate(models)],
        "runtime": {"store": None},
    }
    path = tmp_path / "check.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_check_finds_local_dirs_and_complete_cached_snapshots(tmp_path: Path, hub_cache: Path) -> None:
    (tmp_path / "local_model").mkdir()
    (tmp_path / "local_model" / "config.json").write_text("{}")
    res = invoke("check", check_recipe(tmp_path, [str(tmp_path / "local_model"), "org/whole", "org/sharded"]))
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.stdout.splitlines()[1:4]]
    assert [r[4] for r in rows] == ["local", "cached", "cached"]  # scorer mN (hf_vlm) MODEL STATUS
    assert "found all 3 models" in res.stdout


def test_check_lists_every_missing_model_with_its_download_command_offline(
    tmp_path: Path, hub_cache: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights, "on_hub", lambda *a, **k: pytest.fail("offline: the Hub must not be asked"))
    (tmp_path / "empty_dir").mkdir()
    models = ["org/whole", "org/half", "org/absent", str(tmp_path / "no_such_dir"), str(tmp_path / "empty_dir")]
    res = invoke("check", check_recipe(tmp_path, models))
    assert res.exit_code == 2
    out = res.stdout
    assert "4 of 5 models missing" in out and "no config.json in this directory" in out
    assert "org/half" in out and "hf download org/half\n" in out  # a missing shard: the snapshot is incomplete
    assert "hf download org/absent\n" in out and "HF_HUB_OFFLINE is set" in out
    assert f"Fix the path in the recipe: {tmp_path / 'no_such_dir'} (no such file or directory)" in out
    assert "hf download org/whole" not in out


def test_check_asks_the_hub_once_when_online(tmp_path: Path, hub_cache: Path, monkeypatch) -> None:
    from huggingface_hub import HfApi

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(weights, "_probe_hub", lambda: None)  # the Hub answers (model_info below)
    asked = []

    def model_info(self, repo_id, **kwargs):
        asked.append(repo_id)
        if repo_id == "org/typo":
            raise RuntimeError("404 Repository Not Found")
        sizes = [("model.safetensors", 3_000_000_000), ("config.json", 10)]
        return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f, size=s) for f, s in sizes])

    monkeypatch.setattr(HfApi, "model_info", model_info)
    res = invoke("check", check_recipe(tmp_path, ["org/online"]))
    assert res.exit_code == 0 and "hub" in res.stdout and "downloaded on first use (3.0 GB)" in res.stdout
    assert "found the model; 1 will be downloaded on first use" in res.stdout
    res = invoke("check", check_recipe(tmp_path, ["org/online", "org/typo"]))
    assert res.exit_code == 2 and "Repository Not Found" in res.stdout and "hf download org/typo" in res.stdout
    asked.clear()
    res = invoke("check", check_recipe(tmp_path, ["org/online"]), "--local")
    assert res.exit_code == 2 and asked == [] and "--local" in res.stdout


def test_check_names_the_sam2_and_clip_files(tmp_path: Path, hub_cache: Path) -> None:
    pytest.importorskip("sam2")
    pytest.importorskip("open_clip")
    res = invoke("check", "ablations/table5/sam_tiny")
    assert res.exit_code == 2
    assert "hf download facebook/sam2.1-hiera-tiny sam2.1_hiera_tiny.pt" in res.stdout
    assert "hf download mPLUG/mPLUG-Owl3-7B-240728\n" in res.stdout
    res = invoke("check", "clip_iqa")
    assert "hf download timm/resnet50_clip.openai open_clip_model.safetensors" in res.stdout


# ---------------------------------------------------------------- iqa plugins NAME


def test_plugins_name_shows_parameters_with_type_default_and_description() -> None:
    res = invoke("plugins", "mix_grained")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "aggregator mix_grained  [iqa] iqa_plugins.aggregators.regions:MixGrainedAggregator"
    lam = next(line.split(None, 3) for line in lines if line.strip().startswith("lam "))
    assert lam == ["lam", "float", "1.0", "weight of the local score"]
    assert any(line.split()[:3] == ["normalize", "Literal['sum',", "'image']"] for line in lines)


def test_plugins_name_marks_required_params_and_missing_packages(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    res = invoke("plugins", "hf_vlm")
    assert res.exit_code == 0, res.output
    model = next(line.split() for line in res.stdout.splitlines() if line.strip().startswith("model "))
    assert model == ["model", "str", "(required)"]
    assert "needs: torch, transformers (missing transformers: pip install 'iqa[models]')" in res.stdout


def test_plugins_unknown_name_is_one_line() -> None:
    res = invoke("plugins", "janus")
    assert res.exit_code == 2
    assert res.stderr == "error: no component named 'janus'; did you mean 'janus_pro'? `iqa plugins` lists them\n"
