"""Component contracts: standards (supplementary §E), LevelProbs, cache keys, Params."""

from __future__ import annotations

import re

import numpy as np
import pytest
from pydantic import ValidationError

from helpers import BrightnessScorer
from iqa_core import registry
from iqa_core.api import LevelProbs, Params, Region, Standard
from iqa_core.decode import decode
from iqa_plugins.aggregators.regions import MixGrainedAggregator
from iqa_plugins.standards.levels import CustomStandard, NumberStandard, SentenceStandard, WordStandard

# Supplementary §E, verbatim (line breaks of the PDF layout joined with one space).
PAPER_SYSTEM_9_WORD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. The quality standard is listed as follows: "
    "9: Perfect, 8: Excellent, 7: Very Good, 6: Good, 5: Fair, 4: Bad, 3: Poor, 2: Awful, 1: Very "
    "Bad. The higher the image quality, the higher the score should be. Please strictly follow the "
    "USER's format, otherwise the result will be invalid."
)
PAPER_USER_9 = (
    "please evaluate the quality of the image and score in [1,2,3,4,5,6,7,8,9]. "
    "Only tell me the number. Do not analyze the image."
)
PAPER_SYSTEM_7_WORD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. The quality standard is listed as follows: "
    "7: Perfect, 6: Excellent, 5: Good, 4: Fair, 3: Bad, 2: Poor, 1: Very Bad. The higher the image "
    "quality, the higher the score should be. Please strictly follow the USER's format, otherwise "
    "the result will be invalid."
)
PAPER_USER_7 = (
    "please evaluate the quality of the image and score in [1,2,3,4,5,6,7]. Only "
    "tell me the number. Do not analyze the image."
)
PAPER_SYSTEM_5_WORD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. The quality standard is listed as follows: "
    "5: Excellent, 4: Good, 3: Fair, 2: Bad, 1: Poor. The higher the image quality, the higher the "
    "score should be. Please strictly follow the USER's format, otherwise the result will be invalid."
)
PAPER_SYSTEM_3_WORD = (
    "You are a helpful assistant to help me evaluate the quality of the image. "
    "You will be given standards about each quality level. The quality standard is listed as follows: "
    "3: Excellent, 2: Fair, 1: Poor. The higher the image quality, the higher the score should be. "
    "Please strictly follow the USER's format, otherwise the result will be invalid."
)
PAPER_SYSTEM_7_SENTENCE = """You are a helpful assistant to help me evaluate the quality of the image. You will be given standards about each quality level. The quality standard is listed as follows:
7: Perfect! The overall quality of the image is unparalleled, with every detail meeting the highest standards.
6: Excellent! The overall quality of the image is excellent, with all aspects being exemplary and without flaw.
5: Good! The overall quality of the image is good, and it is satisfactory in many aspects.
4: Fair! The overall quality of the image is fair. There are certain merits but also some deficiencies.
3: Bad! The overall quality of the image is bad, with noticeable shortcomings.
2: Poor! The overall quality of the image is poor, with obvious defects.
1: Very Bad! The overall quality of the image is very bad and hard to accept.
The higher the image quality, the higher the score should be.
Please strictly follow the USER's format, otherwise the result will be invalid."""
PAPER_SYSTEM_7_NUMBER = (
    "You are a helpful assistant to help me evaluate the quality of the image. The higher the image "
    "quality, the higher the score should be. Please strictly follow the USER's format, otherwise "
    "the result will be invalid."
)


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


STANDARDS = {"number": NumberStandard, "word": WordStandard, "sentence": SentenceStandard}


# ------------------------------------------------------------------ standards


@pytest.mark.parametrize("form", sorted(STANDARDS))
@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_digit_standards_have_k_ascending_digit_levels(form: str, k: int) -> None:
    std = registry.get("standards", form)({"levels": k})
    assert isinstance(std, Standard)
    assert std.k == k
    assert std.labels == tuple(str(i) for i in range(1, k + 1))
    assert std.values == tuple(float(i) for i in range(1, k + 1))
    assert list(std.values) == sorted(std.values)
    assert len(std.descriptions) == k
    assert std.user == (
        f"please evaluate the quality of the image and score in [{','.join(std.labels)}]. "
        "Only tell me the number. Do not analyze the image."
    )
    # the system text lists the levels best first (except the number form: no list at all)
    if form == "number":
        assert squash(std.system) == PAPER_SYSTEM_7_NUMBER
        assert not re.search(r"\d:", std.system)
    else:
        positions = [std.system.index(f"{i}: ") for i in range(k, 0, -1)]
        assert positions == sorted(positions)
        assert f"{k + 1}:" not in std.system


@pytest.mark.parametrize(
    "k, system, user",
    [
        (9, PAPER_SYSTEM_9_WORD, PAPER_USER_9),
        (7, PAPER_SYSTEM_7_WORD, PAPER_USER_7),
        (5, PAPER_SYSTEM_5_WORD, None),
        (3, PAPER_SYSTEM_3_WORD, None),
    ],
)
def test_word_standard_texts_are_the_supplementary_verbatim(k: int, system: str, user: str | None) -> None:
    std = WordStandard({"levels": k})
    assert std.system == system
    if user is not None:
        assert std.user == user


def test_sentence_and_number_texts_match_the_supplementary() -> None:
    assert SentenceStandard({"levels": 7}).system == PAPER_SYSTEM_7_SENTENCE  # line breaks too
    assert SentenceStandard({"levels": 7}).user == PAPER_USER_7
    assert NumberStandard({"levels": 7}).system == PAPER_SYSTEM_7_NUMBER
    assert NumberStandard({"levels": 7}).user == PAPER_USER_7


@pytest.mark.parametrize("k", [3, 5, 9])
def test_sentence_standard_other_k_has_one_sentence_per_level(k: int) -> None:
    std = SentenceStandard({"levels": k})
    lines = [ln for ln in std.system.splitlines() if re.match(r"\d: ", ln)]
    assert [ln.split(":")[0] for ln in lines] == [str(i) for i in range(k, 0, -1)]
    assert all("The overall quality of the image is" in ln for ln in lines)
    assert len(set(lines)) == k


@pytest.mark.parametrize("k", [2, 4, 10, 0])
def test_digit_standards_reject_other_k(k: int) -> None:
    with pytest.raises(ValidationError):
        WordStandard({"levels": k})


def test_custom_standard_sorts_levels_and_builds_texts() -> None:
    std = CustomStandard(
        {
            "levels": [
                {"value": 10, "label": "A", "description": "great"},
                {"value": 0, "label": "C", "description": "awful"},
                {"value": 5, "label": "B"},
            ]
        }
    )
    assert std.values == (0.0, 5.0, 10.0)
    assert std.labels == ("C", "B", "A")
    assert std.descriptions == ("awful", "B", "great")
    assert "A: great, B, C: awful." in std.system
    assert "[C,B,A]" in std.user
    own = CustomStandard(
        {"levels": [{"value": 1, "label": "x"}, {"value": 2, "label": "y"}], "system": "S", "user": "U"}
    )
    assert (own.system, own.user) == ("S", "U")


@pytest.mark.parametrize(
    "levels, message",
    [
        ([{"value": 1, "label": "a"}, {"value": 1, "label": "b"}], "values must be distinct"),
        ([{"value": 1, "label": "a"}, {"value": 2, "label": "a"}], "labels must be distinct"),
        ([{"value": 1, "label": "a"}], "at least 2"),
        ([{"value": 1, "label": "a"}, {"value": 2, "label": "b", "colour": "red"}], "Extra inputs"),
    ],
)
def test_custom_standard_rejects_bad_levels(levels: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CustomStandard({"levels": levels})


def test_prompt_key_follows_the_texts() -> None:
    keys = {
        WordStandard({"levels": 7}).prompt_key(),
        SentenceStandard({"levels": 7}).prompt_key(),
        NumberStandard({"levels": 7}).prompt_key(),
        WordStandard({"levels": 5}).prompt_key(),
    }
    assert len(keys) == 4
    assert WordStandard({"levels": 7}).prompt_key() == WordStandard().prompt_key()


# ---------------------------------------------------------------- LevelProbs


def test_level_probs_shape_is_validated() -> None:
    lp = LevelProbs([[0.2, 0.8], [1.0, 0.0]], (1.0, 2.0))
    assert len(lp) == 2 and lp.probs.dtype == np.float64
    row = lp.row(1)
    assert row.probs.shape == (1, 2) and row.values == (1.0, 2.0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        LevelProbs([[0.5, 0.5]], (1.0, 2.0, 3.0))
    with pytest.raises(ValueError):
        LevelProbs([0.5, 0.5], (1.0, 2.0))  # 1-D
    with pytest.raises(ValueError):
        LevelProbs(np.zeros((2, 2, 2)), (1.0, 2.0))


def test_decode_argmax_and_expected() -> None:
    lp = LevelProbs([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2], [0.0, 1.0, 0.0]], (1.0, 2.0, 3.0))
    np.testing.assert_allclose(decode(lp, "argmax"), [3.0, 1.0, 2.0])
    np.testing.assert_allclose(decode(lp, "expected"), [2.6, 1.7, 2.0])
    uneven = LevelProbs([[0.25, 0.75]], (0.0, 10.0))
    np.testing.assert_allclose(decode(uneven, "expected"), [7.5])
    with pytest.raises(ValueError, match="argmax"):
        decode(lp, "median")  # type: ignore[arg-type]


# ------------------------------------------------------------ cache keys, Params


def test_cache_key_changes_with_result_relevant_params_only() -> None:
    base = BrightnessScorer({"batch_size": 4}).cache_key()
    assert BrightnessScorer({"batch_size": 64}).cache_key() == base
    assert BrightnessScorer({"interrupt_after": 3}).cache_key() == base
    assert BrightnessScorer({"sharpness": 2.0}).cache_key() != base
    assert BrightnessScorer().cache_key() == base  # defaults equal explicit defaults
    mix = MixGrainedAggregator().cache_key()
    assert MixGrainedAggregator({"lam": 0.5}).cache_key() != mix
    assert MixGrainedAggregator({"local": "mean"}).cache_key() != mix


class _Older(BrightnessScorer):
    """BrightnessScorer before a ``gain`` parameter existed (same class name, so same key prefix)."""


class _Newer(BrightnessScorer):
    """The same scorer after ``gain`` was added; 1.0 keeps the old behaviour."""

    class Params(BrightnessScorer.Params):
        gain: float = 1.0

    keyed_when_set = frozenset({"gain"})


def test_a_parameter_added_later_keys_only_when_set() -> None:
    _Newer.__qualname__ = _Older.__qualname__
    try:
        old = _Older().cache_key()
        assert _Newer().cache_key() == old == _Newer({"gain": 1.0}).cache_key()  # stored rows stay valid
        assert _Newer({"gain": 2.0}).cache_key() != old
    finally:
        _Newer.__qualname__ = "_Newer"


def test_cache_key_changes_with_class_and_version() -> None:
    class Bumped(BrightnessScorer):
        version = "2"

    assert Bumped().cache_key() != BrightnessScorer().cache_key()


def test_params_forbid_extra_fields_and_are_frozen() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        BrightnessScorer({"batch_sise": 4})
    with pytest.raises(ValidationError):
        MixGrainedAggregator({"lam": -1})
    p = BrightnessScorer().params
    with pytest.raises(ValidationError):
        p.batch_size = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Params(anything=1)


def test_batch_size_comes_from_params() -> None:
    assert BrightnessScorer({"batch_size": 3}).batch_size == 3


def test_describe_is_first_docstring_line() -> None:
    assert WordStandard.describe().startswith("Word standard")
    assert "\n" not in MixGrainedAggregator.describe()


def test_region_view_keys() -> None:
    g = Region("global", (0, 0, 10, 10), 1.0)
    obj = Region("object", (1, 2, 3, 4), 0.1, {"size": [5, 5], "counts": "abc"})
    assert g.view_key("bbox") == g.view_key("mask") == "whole"
    assert obj.view_key("whole") == "whole"
    assert obj.view_key("bbox") == "bbox:1,2,3,4"
    other = Region("object", (1, 2, 3, 4), 0.1, {"size": [5, 5], "counts": "abd"})
    assert obj.view_key("mask") != other.view_key("mask")
    assert obj.view_key("bbox") == other.view_key("bbox")
