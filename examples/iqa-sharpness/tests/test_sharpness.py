"""The plugin's own tests: iqa's conformance check, then what this scorer promises."""

from iqa_sharpness import SharpnessScorer

from iqa_core.testing import check_scorer, synthetic_images


def test_follows_the_scorer_contract():
    check_scorer(SharpnessScorer)
    check_scorer(SharpnessScorer, {"sharp": 500, "temperature": 0.1})


def test_sharper_views_get_higher_levels():
    from PIL import ImageFilter

    from iqa_core.api import View
    from iqa_core.registry import get

    standard = get("standards", "word")({"levels": 7})
    image = synthetic_images(((96, 96),))[0]
    views = [View(image, "sharp"), View(image.filter(ImageFilter.GaussianBlur(3)), "blurred")]
    sharp, blurred = SharpnessScorer().score(views, standard).probs @ standard.values
    assert sharp > blurred
