"""``hf_vlm`` end to end on tiny random builds of the modern VLM families (offline, CPU, float32).

Each family (Gemma 3, InternVL-hf, SmolVLM/Idefics3, LLaVA-OneVision from
``iqa_plugins.testing.tiny_families``; LLaVA-1.5, Qwen2.5-VL and Qwen3-VL from
``iqa_plugins.testing.tiny_vlm``) is saved to a directory and scored through a recipe with
``scorer: hf_vlm``, as a user's downloaded checkpoint is. Views of mixed aspect ratios give the
variable-resolution families prompts of different lengths. The answer-position and batch checks
of the ``tiny_vlm`` families live in ``test_answer_position.py``.

Checked per family: level probabilities are distributions over the 7 levels and are what the
pipeline's scores are computed from; the answer is read where the template puts the reply (the
prepared input followed by the label is exactly the template's rendering of that reply, and the
most probable level is the level greedy ``generate`` writes from the template's generation
prompt); a view gets the same probabilities alone as in a batch of differently shaped views
(to 1e-6); ``processor_options`` reach the image processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402

from iqa_core import load_recipe  # noqa: E402
from iqa_core.api import View  # noqa: E402
from iqa_plugins.scorers.hf_vlm import HFVLMScorer  # noqa: E402
from iqa_plugins.scorers.mllm.chat import conversation  # noqa: E402
from iqa_plugins.standards.levels import WordStandard  # noqa: E402
from iqa_plugins.testing import tiny_families, tiny_vlm  # noqa: E402
from iqa_plugins.testing.tiny_vlm import teach_reply  # noqa: E402

# family: what its template writes between the generation prompt and the reply's first character
OPENINGS = {"gemma3": "", "internvl": "", "idefics3": " ", "llava_onevision": ""}
FAMILIES = tuple(OPENINGS)
# Every family hf_vlm is tested on end to end: builder module, extra scorer params.
END_TO_END: dict[str, tuple[Any, dict[str, Any]]] = {
    **{family: (tiny_families, {}) for family in FAMILIES},
    "llava": (tiny_vlm, {}),
    "qwen2_5_vl": (tiny_vlm, {}),
    "qwen3_vl": (tiny_vlm, {"template_options": {"enable_thinking": False}}),
}
# Families whose processors give views of different shapes different numbers of image tokens.
VARIABLE_RESOLUTION = ("internvl", "idefics3", "llava_onevision", "qwen2_5_vl", "qwen3_vl")
# (height, width): landscape, tall portrait, square, panorama.
SHAPES = [(30, 40), (70, 28), (50, 50), (24, 90)]
STD = WordStandard({"levels": 7})


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: Path(getattr(module, f"build_{name}")(root / name)) for name, (module, _) in END_TO_END.items()}


def random_images(shapes: list[tuple[int, int]], seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in shapes]


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("views")
    paths = [folder / f"view{i}.png" for i in range(len(SHAPES))]
    for path, image in zip(paths, random_images(SHAPES, seed=0), strict=True):
        image.save(path)
    return paths


@pytest.fixture(scope="module")
def views(image_paths: list[Path]) -> list[View]:
    return [View(Image.open(path).convert("RGB"), key=path.name) for path in image_paths]


@pytest.fixture(scope="module")
def runs(model_dirs: dict[str, Path], image_paths: list[Path]) -> dict[str, tuple[Any, list]]:
    """Per family: the pipeline of a ``scorer: hf_vlm`` recipe and its results on the views."""
    out = {}
    for name, path in model_dirs.items():
        pipeline = load_recipe(
            {
                "segmenter": {"name": "whole"},
                "regions": {"views": ["whole"]},
                "standard": {"name": "word", "params": {"levels": 7}},
                "scorers": [
                    {
                        "name": "hf_vlm",
                        "label": name,
                        "params": {
                            "model": str(path),
                            "device": "cpu",
                            "dtype": "float32",
                            "batch_size": 4,
                            **END_TO_END[name][1],
                        },
                    }
                ],
                "decode": "expected",
                "aggregate": {"name": "mean"},
                "runtime": {"store": None, "workers": 0},
            }
        )
        out[name] = (pipeline, pipeline.score_many(image_paths))
    return out


def scorer_of(runs: dict, family: str) -> HFVLMScorer:
    pipeline, _ = runs[family]
    (_, scorer, _) = pipeline.scorers[0]
    return scorer


def generation_prompt(scorer: HFVLMScorer) -> str:
    """The template's own generation prompt for the standard, as a user would render it."""
    turns = conversation(STD.system, STD.user, scorer.system_role(STD))
    return scorer.processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)


def model_inputs(scorer: HFVLMScorer, text: str, images: list[Image.Image]) -> Any:
    """The processor's inputs for ``text`` once per image (no second BOS after a template's)."""
    bos = scorer.tokenizer.bos_token
    return scorer.processor(
        text=[text] * len(images),
        images=[[image] for image in images],
        padding=True,
        add_special_tokens=not (bos and text.startswith(bos)),
        return_tensors="pt",
    )


# ------------------------------------------------------------------ end to end


@pytest.mark.parametrize("family", END_TO_END)
def test_recipe_scores_mixed_views(runs, views, family):
    """Every view scored; each image's score is the expectation of its level distribution."""
    _, results = runs[family]
    assert [r.error for r in results] == [None] * len(SHAPES)
    probs = scorer_of(runs, family).score(views, STD)
    assert probs.probs.shape == (len(SHAPES), 7)
    np.testing.assert_allclose(probs.probs.sum(axis=1), 1.0, atol=1e-9)
    expected = probs.probs @ np.asarray(STD.values)
    np.testing.assert_allclose([r.scorer_scores[family] for r in results], expected, atol=1e-6)
    assert np.ptp(expected) > 1e-3, "views should get different scores, or the batch check proves nothing"


@pytest.mark.parametrize("family", VARIABLE_RESOLUTION)
def test_mixed_shapes_give_prompts_of_different_lengths(runs, views, family):
    scorer = scorer_of(runs, family)
    mask = model_inputs(scorer, scorer.prompt(STD), [view.image for view in views])["attention_mask"]
    assert len(set(mask.sum(dim=1).tolist())) > 1


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_invariant(runs, views, family):
    """A view gets the same probabilities alone as in a batch of differently shaped views."""
    scorer = scorer_of(runs, family)
    batched = scorer.score(views, STD).probs
    alone = np.concatenate([scorer.score([view], STD).probs for view in views])
    np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(scorer.score(views[::-1], STD).probs[::-1], alone, rtol=0, atol=1e-6)


# ------------------------------------------------------------------ answer position


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_is_the_generation_prompt_then_the_reply_opening(runs, family):
    scorer = scorer_of(runs, family)
    assert scorer.prompt(STD) == generation_prompt(scorer) + OPENINGS[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_prepared_input_then_label_is_the_templates_reply(runs, views, family):
    """The model's input followed by each label token is, token for token and with the image
    expanded, how the template renders an assistant turn holding that label."""
    scorer = scorer_of(runs, family)
    image = views[1].image
    prepared = model_inputs(scorer, scorer.prompt(STD), [image])["input_ids"][0].tolist()
    turns = conversation(STD.system, STD.user, scorer.system_role(STD))
    for label, label_id in zip(STD.labels, scorer.label_ids(STD), strict=True):
        reply = [*turns, {"role": "assistant", "content": [{"type": "text", "text": label}]}]
        rendered = scorer.processor.apply_chat_template(reply, tokenize=False)
        ids = model_inputs(scorer, rendered, [image])["input_ids"][0].tolist()
        assert ids[: len(prepared) + 1] == [*prepared, label_id], scorer.tokenizer.convert_ids_to_tokens(
            ids[len(prepared) - 2 : len(prepared) + 2]
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_argmax_level_is_the_level_greedy_generate_writes(model_dirs, family):
    """A model taught its format (after the generation prompt it writes the template's opening,
    then a level that depends on the image) answers by ``generate`` from the template's own
    generation prompt; the scorer's most probable level is that answer for every view."""
    scorer = HFVLMScorer({"model": str(model_dirs[family]), "device": "cpu", "dtype": "float32"})
    scorer.load(STD)
    tok = scorer.tokenizer
    opened = generation_prompt(scorer) + OPENINGS[family]  # where the template writes the label
    prompt_ids = tok.encode(generation_prompt(scorer), add_special_tokens=False)
    opened_ids = tok.encode(opened, add_special_tokens=False)
    assert opened_ids[: len(prompt_ids)] == prompt_ids
    chain = opened_ids[len(prompt_ids) - 1 :]  # the prompt's last token, then the opening's
    calibration = [model_inputs(scorer, opened, [image]) for image in random_images(SHAPES * 2, seed=3)]
    teach_reply(scorer.model, chain, scorer.label_ids(STD), calibration)

    images = random_images(SHAPES * 2, seed=1)
    argmax = scorer.score([View(image, f"v{i}") for i, image in enumerate(images)], STD).probs.argmax(axis=1)
    inputs = [model_inputs(scorer, generation_prompt(scorer), [image]) for image in images]
    answers = tiny_vlm.greedy_replies(scorer.model, tok, inputs, len(chain))
    assert all(answer in STD.labels for answer in answers), answers
    assert len(set(answers)) > 1, "the taught level should depend on the image"
    assert [STD.labels[i] for i in argmax] == answers


def test_processor_options_reach_the_image_processor(model_dirs, runs, views):
    """SmolVLM without image splitting (``processor_options``): every view is the global image
    alone, so all prompts have one length, shorter than any split view's."""
    params = {"model": str(model_dirs["idefics3"]), "device": "cpu", "dtype": "float32"}
    whole = HFVLMScorer({**params, "processor_options": {"do_image_splitting": False}})
    whole.load(STD)
    images = [view.image for view in views]
    unsplit = model_inputs(whole, whole.prompt(STD), images)["attention_mask"].sum(dim=1).tolist()
    split = scorer_of(runs, "idefics3")
    assert len(set(unsplit)) == 1
    assert unsplit[0] < min(model_inputs(split, split.prompt(STD), images)["attention_mask"].sum(dim=1).tolist())
    probs = whole.score(views, STD).probs
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
