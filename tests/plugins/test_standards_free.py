"""The free standard (Table 3 row 1): no level list, a decimal score in [1, K]."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from iqa_plugins.standards.levels import NUMBER_SYSTEM, FreeStandard, NumberStandard

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_range_values_and_labels(k):
    standard = FreeStandard({"levels": k})
    assert standard.values == tuple(float(v) for v in range(1, k + 1))
    assert standard.labels == tuple(str(v) for v in range(1, k + 1))
    assert f"in the range 1 to {k}, a decimal number. Only" in standard.user
    assert f"in the range 1 to {k}, a decimal number such as " in FreeStandard({"levels": k, "example": True}).user


def test_texts_list_no_levels():
    standard = FreeStandard()
    assert standard.k == 7
    assert standard.system == NUMBER_SYSTEM
    assert standard.user == (
        "please evaluate the quality of the image and score in the range 1 to 7, a decimal "
        "number. Only tell me the number. Do not analyze the image."
    )
    for word in ("Perfect", "Excellent", "Poor", "[1,2", "such as", "4.3"):
        assert word not in standard.system + standard.user


def test_example_is_an_option_that_changes_the_prompt_key():
    plain, anchored = FreeStandard(), FreeStandard({"example": True})
    assert anchored.user == (
        "please evaluate the quality of the image and score in the range 1 to 7, a decimal "
        "number such as 4.3. Only tell me the number. Do not analyze the image."
    )
    assert plain.prompt_key() != anchored.prompt_key()


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_example_is_inside_the_range_and_not_a_level(k):
    user = FreeStandard({"levels": k, "example": True}).user
    example = float(user.split("such as ")[1].split(". Only")[0])
    assert 1 < example < k and not example.is_integer()


def test_differs_from_the_number_standard_only_in_the_question():
    free, number = FreeStandard(), NumberStandard()
    assert free.system == number.system and free.user != number.user
    assert free.prompt_key() != number.prompt_key()


def test_levels_are_validated():
    with pytest.raises(ValidationError):
        FreeStandard({"levels": 4})
    with pytest.raises(ValidationError):
        FreeStandard({"levels": 7, "words": True})


def test_declared_as_the_free_entry_point():
    """Read from pyproject.toml: an installed copy's metadata may predate the entry."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    target = pyproject["project"]["entry-points"]["iqa.standards"]["free"]
    module, attr = target.split(":")
    assert getattr(importlib.import_module(module), attr) is FreeStandard
