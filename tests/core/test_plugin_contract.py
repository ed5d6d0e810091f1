"""Contract mistakes are named at registration or load, and iqa_core.testing catches the rest."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from helpers import BrightnessScorer, QuadrantSegmenter, write_images
from iqa_core import registry
from iqa_core.api import LevelProbs, Scorer, Standard, View
from iqa_core.cli import cli
from iqa_core.contract import PluginContractError
from iqa_core.errors import ModelUnavailable
from iqa_core.testing import check_aggregator, check_scorer, check_segmenter, check_standard


class NoStandardLoad(BrightnessScorer):
    def load(self) -> None:  # type: ignore[override]  # the contract is load(self, standard)
        pass


class PlainParams(BrightnessScorer):
    class Params:  # type: ignore[no-redef]  # not a pydantic model
        batch_size = 4


class NoScore(Scorer):
    """Forgot score()."""


def test_register_names_the_plugin_and_the_rule() -> None:
    with pytest.raises(PluginContractError) as err:
        registry.register("scorers", "bad", NoStandardLoad)
    assert str(err.value) == (
        "scorer 'bad' breaks the plugin contract: the engine calls load(self, standard), but it defines load(self)"
    )
    with pytest.raises(PluginContractError, match="its Params must subclass iqa_core.api.Params"):
        registry.register("scorers", "bad", PlainParams)
    with pytest.raises(PluginContractError, match="it does not implement score"):
        registry.register("scorers", "bad", NoScore)
    assert "bad" not in registry.available("scorers")


def test_uncached_params_must_name_params() -> None:
    class Typo(BrightnessScorer):
        uncached_params = frozenset({"batchsize"})

    with pytest.raises(PluginContractError, match=r"uncached_params names \['batchsize'\]"):
        registry.register("scorers", "typo", Typo)


def test_a_broken_plugin_named_in_a_recipe_is_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "badplugin.py").write_text(
        "from iqa_core.api import LevelProbs, Scorer\n"
        "class Bad(Scorer):\n"
        "    def score(self, views):\n"
        "        return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"scorers": [{"name": "badplugin:Bad"}], "runtime": {"allow_imports": True}}))
    res = CliRunner().invoke(cli, ["validate", str(recipe)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert (
        "scorers[0].name: scorer 'badplugin:Bad' (badplugin:Bad, from <direct reference>) breaks the plugin "
        "contract: the engine calls score(self, views, standard), but it defines score(self, views)"
    ) in res.stderr
    sys.modules.pop("badplugin", None)


def test_model_unavailable_with_a_plugin_message(tmp_path: Path, test_plugins) -> None:
    assert str(ModelUnavailable("weights for 'x' are not installed")) == "weights for 'x' are not installed"
    assert "cannot load model 'a/b': offline. Download" in str(ModelUnavailable("a/b", "offline"))

    class Unavailable(BrightnessScorer):
        def load(self, standard: Standard) -> None:
            raise ModelUnavailable("my-model is not here: run `my-plugin fetch`")

    registry.register("scorers", "unavailable", Unavailable)
    try:
        write_images(tmp_path / "imgs", 2)
        recipe = tmp_path / "r.yaml"
        recipe.write_text(yaml.safe_dump({"scorers": [{"name": "unavailable"}], "runtime": {"store": None}}))
        res = CliRunner().invoke(cli, ["run", "-r", str(recipe), str(tmp_path / "imgs")])
    finally:
        registry.unregister("scorers", "unavailable")
    assert res.exit_code == 2 and res.stderr == "error: my-model is not here: run `my-plugin fetch`\n"


# ------------------------------------------------------------- iqa_core.testing


def test_checks_pass_for_conforming_components() -> None:
    out = check_scorer(BrightnessScorer, {"sharpness": 2.0})
    assert out.probs.shape == (3, 7)
    assert check_segmenter(QuadrantSegmenter)[0].shape == (32, 48)
    for name in ("word", "number", "sentence", "free"):
        check_standard(registry.get("standards", name))
    check_standard(registry.get("standards", "word"), {"levels": 3})
    assert check_aggregator(registry.get("aggregators", "mix_grained")) == pytest.approx((4 + 0.25 * 6 + 0.75 * 2) / 2)
    assert check_aggregator(registry.get("aggregators", "ensemble")) == 5.0


class BatchDependent(BrightnessScorer):
    """Normalises over the batch: a view's score depends on its neighbours."""

    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        probs = super().score(views, standard).probs
        probs = probs ** (1 + len(views))
        return LevelProbs(probs / probs.sum(axis=1, keepdims=True), standard.values)


class Unnormalised(BrightnessScorer):
    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        return LevelProbs(np.ones((len(views), standard.k)), standard.values)


class WrongShape(BrightnessScorer):
    def score(self, views: Sequence[View], standard: Standard) -> LevelProbs:
        return LevelProbs(np.full((1, standard.k), 1 / standard.k), standard.values)


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (BatchDependent, "depend on the other views in its batch"),
        (Unnormalised, "rows must sum to 1"),
        (WrongShape, r"3 views gave probabilities \(1, 7\)"),
        (NoStandardLoad, "breaks the plugin contract: the engine calls load"),
    ],
)
def test_check_scorer_names_the_broken_rule(cls: type[Scorer], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_scorer(cls)


def test_check_segmenter_rejects_bad_masks() -> None:
    class Floats(QuadrantSegmenter):
        def segment(self, image: np.ndarray) -> list[np.ndarray]:
            return [m.astype(float) for m in super().segment(image)]

    class Squashed(QuadrantSegmenter):
        def segment(self, image: np.ndarray) -> list[np.ndarray]:
            return [np.zeros((10, 10), bool)]

    with pytest.raises(AssertionError, match="2-D boolean arrays"):
        check_segmenter(Floats)
    with pytest.raises(AssertionError, match="a 10x10 mask for a 96x64 image"):
        check_segmenter(Squashed)


def test_check_standard_rejects_misaligned_levels() -> None:
    word = registry.get("standards", "word")

    class Descending(word):  # type: ignore[misc, valid-type]
        @property
        def values(self) -> tuple[float, ...]:
            return tuple(reversed(super().values))

    class ShortLabels(word):  # type: ignore[misc, valid-type]
        @property
        def labels(self) -> tuple[str, ...]:
            return super().labels[1:]

    with pytest.raises(AssertionError, match="distinct and ascending"):
        check_standard(Descending)
    with pytest.raises(AssertionError, match="7 values, 6 labels and 7 descriptions must align"):
        check_standard(ShortLabels)
